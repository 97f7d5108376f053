extension ConfigValue {
    /// The value as a list of strings, accepting the shapes Prosody configs use
    /// for lists of names:
    /// - a list: `{ "a", "b" }`, in its order;
    /// - a set: `{ a = true, b = true }` (keys whose value is `false` are left out),
    ///   sorted, after the list part if a table has both: a set has no order of its
    ///   own, and Lua's is the hash table's, which changes from run to run;
    /// - a single string: `"a"` is `["a"]`.
    ///
    /// This is the one reading of a list of names; every option read as one
    /// (`modules_enabled`, `interfaces`, `plugin_paths`, ...) goes through it.
    /// - Throws: ``StringListError`` for anything else (a number in the list, a set
    ///   value that is not a boolean, a number or boolean instead of a list).
    public func stringList() throws(StringListError) -> [String] {
        switch self {
        case .string(let string):
            return [string]
        case .table(let table):
            var list: [String] = []
            for (offset, element) in table.array.enumerated() {
                guard case .string(let string) = element else {
                    throw StringListError(.notAString(position: offset + 1, found: element.typeName))
                }
                list.append(string)
            }
            var members: [String] = []
            for (key, value) in table.map {
                switch (key, value) {
                case (.string(let name), .boolean(let included)):
                    if included { members.append(name) }
                case (.string(let name), _):
                    throw StringListError(.notASetMember(key: "\"\(name)\"", found: value.typeName))
                case (.integer(let number), _):
                    throw StringListError(.notASetMember(key: "\(number)", found: value.typeName))
                }
            }
            return list + members.sorted()
        case .integer, .number, .boolean:
            throw StringListError(.notAList(found: typeName))
        }
    }

    /// ``stringList()``, or nil where it throws.
    public var stringListValue: [String]? {
        try? stringList()
    }
}

/// Why a value is not a list of strings.
public struct StringListError: Error, Sendable, Hashable, CustomStringConvertible {
    enum Reason: Sendable, Hashable {
        case notAList(found: String)
        case notAString(position: Int, found: String)
        case notASetMember(key: String, found: String)
    }

    let reason: Reason

    init(_ reason: Reason) { self.reason = reason }

    public var description: String {
        switch reason {
        case .notAList(let found):
            "expected a string or a list of strings like { \"a\", \"b\" }, got a \(found)"
        case .notAString(let position, let found):
            "expected a list of strings, but item \(position) is a \(found)"
        case .notASetMember(let key, let found):
            "expected a list of strings or a set like { a = true }, but [\(key)] is a \(found)"
        }
    }
}
