import Foundation
import Logging
import Synchronization
import Testing

@testable import NetHostLogging

#if canImport(Glibc)
import Glibc
#endif

// Issue 14, item 3: a log call only queues its line; one writer thread writes it.
// These tests use real FIFOs, /dev/full and threads, because only they show a write
// that blocks or fails. No timer is involved; the few waits below are fail-safes
// (a test that would otherwise hang ends and fails), never what a test passes on.

// MARK: - Helpers

/// A fresh folder for one test, removed afterwards.
private func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("nethost-log-queue-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// What a writer reported for standard error.
private final class Reports: Sendable {
    private let items = Mutex<[LogWriter.Report]>([])
    var all: [LogWriter.Report] { items.withLock { $0 } }
    @Sendable func record(_ report: LogWriter.Report) { items.withLock { $0.append(report) } }
}

/// A logger writing to the file at `path` through `writer`, and its sink.
private func fileLogger(_ label: String, path: String, writer: LogWriter) throws -> (Logger, OpenSink) {
    let configuration = LoggingConfiguration(sinks: [.init(destination: .file(path: path), levels: .atLeast(.debug))])
    let sinks = try OpenSinks(opening: configuration, writer: writer)
    let logger = Logger(label: label) { SinkLogHandler(label: $0, sinks: sinks, metadataProvider: nil) }
    return (logger, sinks.sinks[0])
}

/// Runs `body` on a thread of its own, so that the test can see whether it returns.
private final class BackgroundRun: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let returned = Mutex(false)

    init(_ body: @escaping @Sendable () -> Void) {
        let done = self.done
        Thread.detachNewThread {
            body()
            done.signal()
        }
    }

    /// Whether `body` has returned, waiting up to `failSafe` for it.
    func hasReturned(waitingUpTo failSafe: Duration) -> Bool {
        if returned.withLock({ $0 }) { return true }
        guard done.wait(timeout: .now() + .milliseconds(Int(failSafe.components.seconds * 1000))) == .success else {
            return false
        }
        returned.withLock { $0 = true }
        return true
    }
}

/// Bytes in a pipe or FIFO that no one has read yet.
private func unreadBytes(_ descriptor: Int32) -> Int {
    var count: Int32 = 0
    guard ioctl(descriptor, UInt(FIONREAD), &count) == 0 else { return -1 }
    return Int(count)
}

/// The capacity of a pipe or FIFO (`F_GETPIPE_SZ`, which Glibc does not export to Swift).
private func pipeCapacity(_ descriptor: Int32) -> Int {
    Int(fcntl(descriptor, 1032))
}

/// Reads a non-blocking FIFO until its text contains `text` and nothing more comes
/// in a moment; gives up after `failSafe`.
private func read(_ descriptor: Int32, through text: String, failSafe: Duration = .seconds(60)) -> String {
    var received: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    let deadline = ContinuousClock.now.advanced(by: failSafe)
    while ContinuousClock.now < deadline {
        var entry = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = poll(&entry, 1, 100)
        if ready > 0 {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                received.append(contentsOf: buffer.prefix(count))
                continue
            }
        }
        if String(decoding: received, as: UTF8.self).contains(text) { break }
    }
    return String(decoding: received, as: UTF8.self)
}

/// Lines without their timestamps.
private func records(_ text: String) -> [String] {
    text.split(separator: "\n").map { String($0.drop { $0 != " " }.dropFirst()) }
}

@Suite("Logging: the queue and its writer thread")
struct LoggingQueueTests {
    /// A FIFO no one reads: the writer's write blocks once the FIFO is full. The
    /// 100,000 log calls still return, while the writer is still stuck: the queue is
    /// full to its bound (10,000 lines), the FIFO within a page of its capacity.
    /// The rest is dropped and counted, and once the FIFO is read, it gets every
    /// line that was queued and then one line saying how many were dropped.
    @Test func aSinkThatBlocksDoesNotBlockTheLoggingCall() throws {
        try withTemporaryDirectory { directory in
            let fifo = directory + "/blocked.fifo"
            try #require(mkfifo(fifo, 0o600) == 0)
            // A reader, so that opening the sink does not wait; not read until the end.
            let reader = open(fifo, O_RDONLY | O_NONBLOCK)
            try #require(reader >= 0)
            defer { close(reader) }
            let reports = Reports()
            let writer = LogWriter(report: reports.record)
            defer { writer.close() }
            let (log, sink) = try fileLogger("fifo", path: fifo, writer: writer)

            let total = 100_000
            let calls = BackgroundRun {
                for index in 0 ..< total { log.info("line \(index)") }
            }
            let returned = calls.hasReturned(waitingUpTo: .seconds(120))
            #expect(returned, "the log calls are stuck behind a FIFO no one reads")
            guard returned else {
                // Let the stuck calls end: read what they write until they do.
                while !calls.hasReturned(waitingUpTo: .seconds(1)) { _ = read(reader, through: "", failSafe: .seconds(1)) }
                return
            }

            // The calls are done and the writer is still blocked on the FIFO.
            #expect(writer.waitingLineCount == LogWriter.Limits.default.lines)
            let capacity = pipeCapacity(reader)
            let unread = unreadBytes(reader)
            #expect(capacity > 0 && unread + 4096 > capacity, "the FIFO holds \(unread) of \(capacity) bytes")
            let dropped = sink.droppedLines.load(ordering: .relaxed)
            #expect(dropped > total - LogWriter.Limits.default.lines - capacity / 40)

            // Read it: the queued lines come, in order, then the report of the drops.
            let lines = records(read(reader, through: "lines dropped"))
            #expect(writer.flush(timeout: .seconds(30)))
            let written = lines.dropLast()
            #expect(written.count + dropped == total)
            #expect(Array(written) == (0 ..< written.count).map { "info [fifo] line \($0)" })
            #expect(lines.last == "warn [nethost] log: \(dropped) lines dropped because the log queue was full (it holds 10000 lines or 8 MiB)")
            // Nothing failed: a FIFO that is slow is not an error.
            #expect(reports.all.isEmpty)
        }
    }

    /// /dev/full stands for a full file system: every write fails with ENOSPC. It is
    /// reported once (not once per line), every line is dropped and counted, and
    /// logging goes on.
    @Test func aFullFileSystemIsReportedOnceAndItsLinesAreCounted() throws {
        let reports = Reports()
        let writer = LogWriter(report: reports.record)
        defer { writer.close() }
        let (log, sink) = try fileLogger("full", path: "/dev/full", writer: writer)

        for index in 0 ..< 1_000 { log.debug("line \(index)") }
        #expect(writer.flush(timeout: .seconds(30)))
        #expect(sink.droppedLines.load(ordering: .relaxed) == 1_000)
        #expect(reports.all == [LogWriter.Report(
            level: .error,
            message: "log: cannot write to /dev/full: No space left on device (ENOSPC); "
                + "its lines are dropped, and counted, until it takes them again")])

        // Still failing: counted, not reported again.
        for index in 0 ..< 10 { log.error("more \(index)") }
        #expect(writer.flush(timeout: .seconds(30)))
        #expect(sink.droppedLines.load(ordering: .relaxed) == 1_010)
        #expect(reports.all.count == 1)
    }

    /// A FIFO whose reader went away: writes fail with EPIPE (and raise SIGPIPE,
    /// which the writer's thread blocks: the test process lives on). Reported once;
    /// when a reader comes back, the FIFO gets the count of dropped lines before the
    /// next line, and the recovery is reported.
    @Test func aSinkThatFailsAndRecoversGetsOneLineAboutTheDrops() throws {
        try withTemporaryDirectory { directory in
            let fifo = directory + "/reader-left.fifo"
            try #require(mkfifo(fifo, 0o600) == 0)
            let firstReader = open(fifo, O_RDONLY | O_NONBLOCK)
            try #require(firstReader >= 0)
            let reports = Reports()
            let writer = LogWriter(report: reports.record)
            defer { writer.close() }
            let (log, sink) = try fileLogger("fifo", path: fifo, writer: writer)
            close(firstReader)

            for index in 0 ..< 50 { log.info("lost \(index)") }
            #expect(writer.flush(timeout: .seconds(30)))
            #expect(sink.droppedLines.load(ordering: .relaxed) == 50)
            #expect(reports.all == [LogWriter.Report(
                level: .error,
                message: "log: cannot write to \(fifo): Broken pipe (EPIPE); "
                    + "its lines are dropped, and counted, until it takes them again")])

            let reader = open(fifo, O_RDONLY | O_NONBLOCK)
            try #require(reader >= 0)
            defer { close(reader) }
            log.info("back")
            #expect(writer.flush(timeout: .seconds(30)))
            #expect(records(read(reader, through: "back")) == [
                "warn [nethost] log: 50 lines dropped while \(fifo) was not writable: Broken pipe",
                "info [fifo] back",
            ])
            #expect(reports.all.dropFirst() == [LogWriter.Report(
                level: .notice, message: "log: \(fifo) takes lines again; 50 lines dropped meanwhile")])
            #expect(sink.droppedLines.load(ordering: .relaxed) == 50)
        }
    }

    /// The queue is bounded in bytes as well as lines: a line that would take it
    /// past its bytes is dropped. The report stands where the line was lost, before
    /// the next line of that sink.
    @Test func theQueueIsBoundedInBytesAndTheReportStandsWhereLinesWereDropped() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/bounded.log"
            let writer = LogWriter(limits: .init(lines: 100, bytes: 200), report: Reports().record)
            defer { writer.close() }
            let (log, sink) = try fileLogger("q", path: path, writer: writer)

            log.info("first")
            log.info("\(String(repeating: "x", count: 300))")
            log.info("third")
            #expect(writer.flush(timeout: .seconds(30)))
            #expect(sink.droppedLines.load(ordering: .relaxed) == 1)
            #expect(records(try String(contentsOfFile: path, encoding: .utf8)) == [
                "info [q] first",
                "warn [nethost] log: 1 line dropped because the log queue was full (it holds 100 lines or 200 bytes)",
                "info [q] third",
            ])
        }
    }

    /// A FIFO with no reader yet: opening it for writing would wait for one, so
    /// start-up does not open it; the writer's thread does, on the first line.
    @Test func aFIFOWithoutAReaderDoesNotHoldUpStartUp() throws {
        try withTemporaryDirectory { directory in
            let fifo = directory + "/later.fifo"
            try #require(mkfifo(fifo, 0o600) == 0)
            let writer = LogWriter(report: Reports().record)
            defer { writer.close() }
            let opened = Mutex<Logger?>(nil)
            let opening = BackgroundRun {
                let log = try? fileLogger("later", path: fifo, writer: writer).0
                opened.withLock { $0 = log }
            }
            let returned = opening.hasReturned(waitingUpTo: .seconds(60))
            #expect(returned, "opening the sinks waits for a reader of the FIFO")
            // A reader, at last (it also lets a stuck open return).
            let reader = open(fifo, O_RDONLY | O_NONBLOCK)
            try #require(reader >= 0)
            defer { close(reader) }
            guard returned, opening.hasReturned(waitingUpTo: .seconds(60)) else { return }
            let log = try #require(opened.withLock { $0 })

            log.info("for the reader")
            #expect(writer.flush(timeout: .seconds(30)))
            #expect(records(read(reader, through: "for the reader")) == ["info [later] for the reader"])
        }
    }
}
