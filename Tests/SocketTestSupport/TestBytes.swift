/// Bytes for the tests that move data.
public enum TestBytes {
    /// `count` bytes from a linear congruential generator started at `seed`: no two
    /// long stretches alike, so a byte lost, repeated or reordered shows, and another
    /// seed gives other bytes.
    ///
    /// Written through a pointer in a plain loop. Generic code run per byte, as
    /// `(0..<count).map { ... }` is in a debug build, looks up type metadata at each
    /// step, which under ThreadSanitizer goes through a process-wide lock: tests making
    /// megabytes that way on twenty threads at once held the suite's threads for a minute.
    public static func pseudoRandom(count: Int, seed: Int = 0) -> [UInt8] {
        guard count > 0 else { return [] }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            var state = UInt32(truncatingIfNeeded: seed &* 2_654_435_761 &+ 1)
            var pointer = base
            let end = base + count
            while pointer < end {
                state = state &* 1_664_525 &+ 1_013_904_223
                pointer.initialize(to: UInt8(truncatingIfNeeded: state >> 24))
                pointer += 1
            }
            initialized = count
        }
    }
}
