import Foundation

/// Runs `body` again and again on a thread of its own, `pause` apart, from start
/// until `stop()`: the steady client traffic that end-to-end tests keep up while a
/// server reloads, is taken over or leaves a fleet. The pause paces real connections
/// to real processes (a rate, not a timeout under test), so it is wall-clock time;
/// timeouts and timers themselves are tested on an `EmbeddedEventLoop`.
final class PacedLoop: Sendable {
    private let stopping = Locked(false)
    private let finished = Locked(false)

    /// `body` gets the round's number, from 1.
    init(name: String, pause: Duration, _ body: @escaping @Sendable (Int) -> Void) {
        let (stopping, finished) = (self.stopping, self.finished)
        let pauseMicroseconds = useconds_t(pause.milliseconds * 1000)
        let thread = Thread {
            var round = 0
            while !stopping.current {
                round += 1
                body(round)
                usleep(pauseMicroseconds)
            }
            finished.withLock { $0 = true }
        }
        thread.name = name
        thread.start()
    }

    /// A loop nobody holds any more stops too (its thread holds only the two flags).
    deinit {
        cancel()
    }

    /// Asks the thread to stop after the round under way, without waiting.
    func cancel() {
        stopping.withLock { $0 = true }
    }

    /// Stops after the round under way; false if it had not ended 15 s later.
    @discardableResult
    func stop() async -> Bool {
        cancel()
        return (try? await poll(timeout: .seconds(15)) { self.finished.current ? true : nil }) != nil
    }
}
