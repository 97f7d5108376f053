/// A value read from the config file, detached from the Lua state that produced it.
///
/// Lua tables keep their shape: the sequence part (keys 1...n) is `array`, every
/// other key lands in `map`, so `{ 5222 }`, `{ "a", "b" }` and
/// `{ [15222] = "c2s" }` all survive the trip.
public enum ConfigValue: Sendable, Hashable {
    case string(String)
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    case table(ConfigTable)
}

extension ConfigValue {
    /// How many tables deep a config value may nest (`{ { } }` is 2). Reading a value
    /// from Lua and pushing one into Lua stop at the same depth, so every option a
    /// config produced reaches a module's `get_option` intact. Real configs nest two
    /// or three deep; past this, a table is far more likely a cycle than data.
    public static let maximumNesting = 32
}

/// A key of a config table that is not part of its sequence.
public enum ConfigKey: Sendable, Hashable, Comparable {
    case integer(Int)
    case string(String)
}

public struct ConfigTable: Sendable, Hashable {
    /// Values at keys 1, 2, ... n with no gap.
    public var array: [ConfigValue]
    /// Every other key.
    public var map: [ConfigKey: ConfigValue]

    public init(array: [ConfigValue] = [], map: [ConfigKey: ConfigValue] = [:]) {
        self.array = array
        self.map = map
    }

    public var isEmpty: Bool { array.isEmpty && map.isEmpty }

    public subscript(key: String) -> ConfigValue? { map[.string(key)] }
}

extension ConfigValue {
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// An integer, also from a number with no fractional part (Lua 5.4 keeps
    /// `5222` and `5222.0` apart; configs use both) and from a string that reads
    /// as one, as Prosody's `tonumber` takes it (`ENV_` variables are strings).
    public var integerValue: Int? {
        switch self {
        case .integer(let value): return value
        case .number(let value) where value.rounded() == value && abs(value) < 9.0e15: return Int(value)
        case .string(let text): return Self.number(fromText: text)?.integerValue
        default: return nil
        }
    }

    /// A number, also from a string that reads as one (see `integerValue`).
    public var numberValue: Double? {
        switch self {
        case .integer(let value): return Double(value)
        case .number(let value): return value
        case .string(let text): return Self.number(fromText: text)?.numberValue
        default: return nil
        }
    }

    /// What Lua's `tonumber` makes of a string: decimal or hexadecimal integers,
    /// decimal floats, with spaces around; not "inf" or "nan", which Lua refuses.
    static func number(fromText text: String) -> ConfigValue? {
        var trimmed = Substring(text.drop(while: \.isWhitespace))
        while trimmed.last?.isWhitespace == true { trimmed = trimmed.dropLast() }
        let unsigned = trimmed.hasPrefix("-") || trimmed.hasPrefix("+") ? trimmed.dropFirst() : trimmed
        let negative = trimmed.hasPrefix("-")
        if unsigned.lowercased().hasPrefix("0x") {
            guard let magnitude = Int(unsigned.dropFirst(2), radix: 16) else { return nil }
            return .integer(negative ? -magnitude : magnitude)
        }
        if let integer = Int(trimmed) { return .integer(integer) }
        guard unsigned.allSatisfy({ $0.isASCII && ($0.isNumber || "eE.+-".contains($0)) }),
              let number = Double(String(trimmed)), number.isFinite
        else { return nil }
        return .number(number)
    }

    public var booleanValue: Bool? {
        if case .boolean(let value) = self { return value }
        return nil
    }

    public var tableValue: ConfigTable? {
        if case .table(let value) = self { return value }
        return nil
    }

    /// What a Lua user would call the type, for messages.
    public var typeName: String {
        switch self {
        case .string: return "string"
        case .integer, .number: return "number"
        case .boolean: return "boolean"
        case .table: return "table"
        }
    }
}
