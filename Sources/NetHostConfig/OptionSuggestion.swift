/// "Did you mean ...?" for an option nobody reads: the known name closest to it,
/// if it is close enough to be a typo.
enum OptionSuggestion {
    /// The candidate at the smallest edit distance from `name` (a swap of two
    /// neighbouring letters counts as one edit), if that distance is small for the
    /// name's length: 1 for up to 7 characters, 2 up to 11, 3 beyond. Ties go to
    /// the alphabetically first, so the answer does not depend on set order.
    static func closest(to name: String, among candidates: some Sequence<String>) -> String? {
        let limit = name.count < 8 ? 1 : name.count < 12 ? 2 : 3
        var best: (name: String, distance: Int)?
        for candidate in candidates where candidate != name {
            guard abs(candidate.count - name.count) <= limit else { continue }
            let distance = editDistance(name, candidate)
            guard distance <= limit else { continue }
            if let current = best, current.distance < distance || (current.distance == distance && current.name < candidate) {
                continue
            }
            best = (candidate, distance)
        }
        return best?.name
    }

    /// Insertions, deletions, substitutions and swaps of adjacent characters
    /// needed to turn `a` into `b` (optimal string alignment distance).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        // Three rows: two back (for swaps), one back, and the current one.
        var beforePrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0 ... b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1 ... a.count {
            current[0] = i
            for j in 1 ... b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    value = min(value, beforePrevious[j - 2] + 1)
                }
                current[j] = value
            }
            (beforePrevious, previous, current) = (previous, current, beforePrevious)
        }
        return previous[b.count]
    }
}
