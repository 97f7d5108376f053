import NIOCore

/// What one connection has waiting to be sent while its peer reads slower than the
/// service writes: the batch handed to the channel and not yet confirmed sent, and
/// the writes made since, kept here until that batch is out.
///
/// Exists only while something waits (a connection whose peer keeps up has none), and
/// counts memory rather than payload: each buffer by its storage (ByteBuffers round up
/// to powers of two, and a few bytes received into a 64 KiB buffer keep all of it)
/// plus `overheadPerBuffer`. Writes made while a batch is out are copied into shared
/// chunks when they are small or their storage is mostly empty, so a flood of one-byte
/// writes costs about a byte each, not a buffer each.
///
/// The channel holds at most one batch of ours at a time: `Connection` hands the next
/// one over when the last is sent, so `bufferedWritableBytes` never holds more than
/// about `batchBytes` (plus one large write) of a connection's output.
final class SendBacklog {
    /// What a queued buffer costs besides its storage, as measured: its storage object
    /// and allocation headers, and the channel's entry for the write.
    static let overheadPerBuffer = 128
    /// Writes of up to this many bytes are copied into a chunk.
    static let copiedUpTo = 4096
    /// A chunk grows (doubling, as ByteBuffers do) up to this size; then a new one starts.
    static let chunkBytes = 16 * 1024
    /// A chunk's first allocation.
    static let firstChunkBytes = 256
    /// Roughly how much one batch hands to the channel at a time.
    static let batchBytes = 64 * 1024

    /// The storage (plus overhead) of the batch the channel holds; 0 while none is out.
    private(set) var inFlight = 0
    /// Whether a batch is out (a batch may be empty: the write that started the backlog).
    var batchOut = false
    /// Queued in order; `openChunk`, if any, follows them.
    private var staged = CircularBuffer<ByteBuffer>()
    /// The last chunk, which later small writes are appended to (kept apart from
    /// `staged` so that it is mutated in place, never copied).
    private var openChunk: ByteBuffer?
    private(set) var stagedStorage = 0

    /// What this connection has reserved from the process-wide budget; kept equal to `storage`.
    var reserved = 0
    /// Connections that stopped reading because they wrote here while this buffer was
    /// above its high-water mark; they read again once it drains below its low one.
    var waitingWriters: [Connection] = []
    /// `Connection.pump` is handing batches over (a batch the channel sends at once
    /// completes inside the write; the pump then loops instead of recursing).
    var pumping = false
    var pumpAgain = false

    /// STARTTLS: how many of the `staged` buffers were written before it, and so go out
    /// in plain text before the TLS stage is added; nil when no STARTTLS waits. Later
    /// writes stay queued behind them (`takeBatch` stops at the mark).
    private(set) var plainBuffers: Int?

    var storage: Int { inFlight + stagedStorage }
    var hasStaged: Bool { !staged.isEmpty || openChunk != nil }
    /// Something written before the STARTTLS mark is still queued or out.
    var plainPending: Bool { batchOut || (plainBuffers ?? 0) > 0 }

    /// Marks where STARTTLS was asked for: what is queued so far goes out in plain text,
    /// what is staged from now on waits for the TLS stage. The open chunk is closed so
    /// that no later write is copied into a buffer that goes out before the mark.
    func markStartTLS() {
        closeChunk()
        plainBuffers = staged.count
    }

    /// Everything before the mark is out: later batches may take what followed it.
    func clearStartTLSMark() {
        plainBuffers = nil
    }

    /// What a buffer kept as it is costs.
    static func cost(of buffer: ByteBuffer) -> Int {
        buffer.storageCapacity + overheadPerBuffer
    }

    /// Whether `buffer` is copied rather than kept: small, or mostly empty storage.
    static func shouldCopy(_ buffer: ByteBuffer) -> Bool {
        buffer.readableBytes <= copiedUpTo || buffer.readableBytes * 2 < buffer.storageCapacity
    }

    /// Queues `buffer` behind the batch that is out; returns what the storage grew by.
    func stage(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) -> Int {
        guard Self.shouldCopy(buffer) else {
            closeChunk()
            staged.append(buffer)
            let cost = Self.cost(of: buffer)
            stagedStorage += cost
            return cost
        }
        return buffer.withUnsafeReadableBytes { stage(bytes: $0, allocator: allocator) }
    }

    /// Queues a copy of `bytes`; returns what the storage grew by.
    func stage(bytes: UnsafeRawBufferPointer, allocator: ByteBufferAllocator) -> Int {
        guard !bytes.isEmpty else { return 0 }
        if bytes.count > Self.copiedUpTo {
            // Too large to share a chunk: a buffer of its own, as small as it can be.
            var copy = allocator.buffer(capacity: bytes.count)
            copy.writeBytes(bytes)
            closeChunk()
            staged.append(copy)
            let cost = Self.cost(of: copy)
            stagedStorage += cost
            return cost
        }
        if openChunk != nil, openChunk!.readableBytes + bytes.count <= Self.chunkBytes {
            let before = openChunk!.storageCapacity
            openChunk!.writeBytes(bytes)
            let grown = openChunk!.storageCapacity - before
            stagedStorage += grown
            return grown
        }
        closeChunk()
        var chunk = allocator.buffer(capacity: max(Self.firstChunkBytes, bytes.count))
        chunk.writeBytes(bytes)
        openChunk = chunk
        let cost = Self.cost(of: chunk)
        stagedStorage += cost
        return cost
    }

    /// Later writes start a new chunk: the open one joins the queue.
    private func closeChunk() {
        if let chunk = openChunk {
            staged.append(chunk)
            openChunk = nil
        }
    }

    /// Counts the write that started the backlog: the channel holds it.
    func holdInFlight(_ cost: Int) {
        inFlight += cost
        batchOut = true
    }

    /// Takes the next batch off the queue and counts it as out; empty if nothing is staged,
    /// or if everything before a STARTTLS mark is already out.
    func takeBatch() -> [ByteBuffer] {
        var batch: [ByteBuffer] = []
        var bytes = 0
        var cost = 0
        while true {
            // At the mark: what follows waits for the TLS stage.
            if let plainBuffers, batch.count >= plainBuffers { break }
            if staged.isEmpty { closeChunk() }  // the open chunk is the last thing queued
            guard let next = staged.first, batch.isEmpty || bytes + next.readableBytes <= Self.batchBytes else { break }
            staged.removeFirst()
            bytes += next.readableBytes
            cost += Self.cost(of: next)
            batch.append(next)
        }
        stagedStorage -= cost
        if let plainBuffers { self.plainBuffers = plainBuffers - batch.count }
        inFlight = cost
        batchOut = !batch.isEmpty
        return batch
    }

    /// The batch out has been sent (or failed); returns what it had counted.
    func batchDone() -> Int {
        let done = inFlight
        inFlight = 0
        batchOut = false
        return done
    }

    /// Drops everything (the connection has closed); returns what was counted.
    func clear() -> Int {
        let all = storage
        staged.removeAll()
        openChunk = nil
        stagedStorage = 0
        inFlight = 0
        batchOut = false
        plainBuffers = nil
        return all
    }
}
