import CLua
enum NetHostPlaceholder { static func version() -> String { String(cString: lua_typename(nil, 0)) } }
