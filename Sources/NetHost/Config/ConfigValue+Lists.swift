extension ConfigValue {
    /// The value as a list of strings, accepting the shapes Prosody configs use
    /// for lists of names:
    /// - a list: `{ "a", "b" }`;
    /// - a set: `{ a = true, b = true }` (keys whose value is `false` are left out),
    ///   sorted, after the list part if a table has both;
    /// - a single string: `"a"` is `["a"]`.
    /// Anything else (a number in the list, a set value that is not a boolean) is nil.
    public var stringListValue: [String]? {
        switch self {
        case .string(let string):
            return [string]
        case .table(let table):
            var list: [String] = []
            for element in table.array {
                guard case .string(let string) = element else { return nil }
                list.append(string)
            }
            var members: [String] = []
            for (key, value) in table.map {
                guard case .string(let name) = key, case .boolean(let included) = value else { return nil }
                if included { members.append(name) }
            }
            return list + members.sorted()
        case .integer, .number, .boolean:
            return nil
        }
    }
}
