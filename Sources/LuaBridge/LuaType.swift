import CLua

/// The basic types of Lua values.
public enum LuaType: Int32, Sendable {
    case none = -1
    case `nil` = 0
    case boolean = 1
    case lightUserdata = 2
    case number = 3
    case string = 4
    case table = 5
    case function = 6
    case userdata = 7
    case thread = 8

    public var name: String {
        switch self {
        case .none: return "no value"
        case .nil: return "nil"
        case .boolean: return "boolean"
        case .lightUserdata, .userdata: return "userdata"
        case .number: return "number"
        case .string: return "string"
        case .table: return "table"
        case .function: return "function"
        case .thread: return "thread"
        }
    }
}

/// A value kept alive in the Lua registry so Swift can hold on to it
/// (a listener table, a callback, a connection's userdata).
///
/// It is only a number: release it with `LuaStack.release(_:)` on the state
/// that made it, on that state's thread.
public struct LuaReference: Hashable, Sendable {
    let id: Int32
    public static let none = LuaReference(id: LUA_NOREF)
    public var isNone: Bool { id == LUA_NOREF || id == LUA_REFNIL }

}

extension LuaReference {
    /// The reference as a plain number, for a slot that must not know Lua; `rawValue:`
    /// takes it back. Never 0 for a real reference.
    package var rawValue: Int32 { id }
    package init(rawValue: Int32) { self.init(id: rawValue) }
}
