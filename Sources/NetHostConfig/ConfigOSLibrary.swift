import LuaBridge
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The `os` table a config file sees: `getenv`, `time`, `date` and `clock`,
/// and nothing that starts processes, touches files or exits.
enum ConfigOSLibrary {
    /// Sets `os` in the global table of `stack`'s state. [-0, +0]
    static func install(on stack: LuaStack, environment: [String: String]) {
        stack.pushGlobalTable()
        stack.newTable(fieldCapacity: 4)
        stack.setFunction("getenv", in: -1) { stack in
            let name = try stack.checkString(1, function: "getenv")
            stack.push(environment[name])
            return 1
        }
        stack.setFunction("time", in: -1, time)
        stack.setFunction("date", in: -1, date)
        stack.setFunction("clock", in: -1) { stack in
            // POSIX fixes CLOCKS_PER_SEC at one million.
            stack.push(Double(clock()) / 1_000_000)
            return 1
        }
        stack.rawSetField("os", in: -2)
        stack.pop()
    }

    /// `os.time([table])`: now, or the time a date table names (local time).
    private static func time(_ stack: LuaStack) throws -> Int32 {
        guard !stack.isNil(at: 1) else {
            stack.push(currentTime())
            return 1
        }
        try stack.checkType(1, .table, function: "time")
        func field(_ name: String, default value: Int?) throws -> Int32 {
            defer { stack.pop() }
            stack.rawGetField(name, from: 1)
            if stack.isNil(at: -1), let value { return Int32(value) }
            guard let number = stack.toInteger(at: -1), let narrow = Int32(exactly: number) else {
                throw LuaArgumentError("field '\(name)' is missing or not an integer in date table")
            }
            return narrow
        }
        var parts = tm()
        parts.tm_year = try field("year", default: nil) - 1900
        parts.tm_mon = try field("month", default: nil) - 1
        parts.tm_mday = try field("day", default: nil)
        parts.tm_hour = try field("hour", default: 12)
        parts.tm_min = try field("min", default: 0)
        parts.tm_sec = try field("sec", default: 0)
        stack.rawGetField("isdst", from: 1)
        parts.tm_isdst = stack.isNil(at: -1) ? -1 : (stack.toBoolean(at: -1) ? 1 : 0)
        stack.pop()
        let seconds = mktime(&parts)
        guard seconds != -1 else {
            throw LuaArgumentError("time result cannot be represented")
        }
        stack.push(Int(seconds))
        return 1
    }

    /// `os.date([format [, time]])`: `strftime` formats, a leading `!` for UTC,
    /// `*t` for a table.
    private static func date(_ stack: LuaStack) throws -> Int32 {
        var format = stack.isNil(at: 1) ? "%c" : try stack.checkString(1, function: "date")
        var when = time_t(stack.isNil(at: 2) ? currentTime() : try stack.checkInteger(2, function: "date"))
        var parts = tm()
        if format.hasPrefix("!") {
            format.removeFirst()
            gmtime_r(&when, &parts)
        } else {
            localtime_r(&when, &parts)
        }
        if format.hasPrefix("*t") {
            stack.newTable(fieldCapacity: 9)
            let fields: [(String, Int32)] = [
                ("year", parts.tm_year + 1900), ("month", parts.tm_mon + 1), ("day", parts.tm_mday),
                ("hour", parts.tm_hour), ("min", parts.tm_min), ("sec", parts.tm_sec),
                ("wday", parts.tm_wday + 1), ("yday", parts.tm_yday + 1),
            ]
            for (name, value) in fields {
                stack.push(Int(value))
                stack.rawSetField(name, in: -2)
            }
            stack.push(parts.tm_isdst > 0)
            stack.rawSetField("isdst", in: -2)
            return 1
        }
        var capacity = 256
        while capacity <= 64 * 1024 {
            var buffer = [CChar](repeating: 0, count: capacity)
            let length = strftime(&buffer, capacity, format, &parts)
            if length > 0 || format.isEmpty {
                stack.push(bytes: buffer[..<length].map { UInt8(bitPattern: $0) })
                return 1
            }
            capacity *= 4
        }
        throw LuaArgumentError(argument: 1, function: "date", "format produces too long a result")
    }
}

/// Seconds since the epoch (`time(2)`, which the `time` members above shadow).
private func currentTime() -> Int {
    Int(time(nil))
}
