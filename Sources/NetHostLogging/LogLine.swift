#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// One formatted record, ready for one `write(2)`:
///
///     2026-11-26T21:40:00.123Z info [net_proxy] message key=value key2=value2
///
/// Metadata comes sorted by key. Control characters in the message, keys and
/// values are escaped (`\n`, `\r`, `\xHH`), so a record is always one line; tabs
/// are kept.
struct LogLine: Sendable {
    /// The whole line, ending in a newline.
    var bytes: [UInt8]
    /// Where `[label] message ...` starts, after the timestamp and the level.
    var bodyStart: Int

    /// The line for syslog, which has its own timestamp and takes the level as
    /// the priority: `[label] message key=value`, no newline.
    var syslogMessage: ArraySlice<UInt8> {
        bytes[bodyStart ..< bytes.count - 1]
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    init(time: LogTimestamp, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata?) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(64 + label.utf8.count + message.utf8.count + (metadata?.count ?? 0) * 24)
        time.append(to: &bytes)
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: LogLevelName.name(of: level).utf8)
        bytes.append(UInt8(ascii: " "))
        self.bodyStart = bytes.count
        bytes.append(UInt8(ascii: "["))
        Self.appendEscaped(label, to: &bytes)
        bytes.append(UInt8(ascii: "]"))
        bytes.append(UInt8(ascii: " "))
        Self.appendEscaped(message, to: &bytes)
        if let metadata, !metadata.isEmpty {
            for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
                bytes.append(UInt8(ascii: " "))
                Self.appendEscaped(key, to: &bytes)
                bytes.append(UInt8(ascii: "="))
                Self.append(value, to: &bytes)
            }
        }
        bytes.append(UInt8(ascii: "\n"))
        self.bytes = bytes
    }

    /// Strings as they are, arrays as `[a, b]`, dictionaries as `[k: v]` sorted by key.
    static func append(_ value: Logger.MetadataValue, to bytes: inout [UInt8]) {
        switch value {
        case .string(let string):
            appendEscaped(string, to: &bytes)
        case .stringConvertible(let convertible):
            appendEscaped(convertible.description, to: &bytes)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(contentsOf: ", ".utf8) }
                append(item, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        case .dictionary(let dictionary):
            bytes.append(UInt8(ascii: "["))
            for (index, (key, item)) in dictionary.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { bytes.append(contentsOf: ", ".utf8) }
                appendEscaped(key, to: &bytes)
                bytes.append(contentsOf: ": ".utf8)
                append(item, to: &bytes)
            }
            bytes.append(UInt8(ascii: "]"))
        }
    }

    /// Appends the UTF-8 of `string`, control characters escaped. Working on bytes
    /// is safe: no byte below 0x80 occurs inside a multi-byte sequence.
    static func appendEscaped(_ string: String, to bytes: inout [UInt8]) {
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\n"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"):
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(UInt8(ascii: "r"))
            case UInt8(ascii: "\t"):
                bytes.append(byte)
            case 0x00 ..< 0x20, 0x7F:
                bytes.append(UInt8(ascii: "\\"))
                bytes.append(UInt8(ascii: "x"))
                bytes.append(hexDigit(byte >> 4))
                bytes.append(hexDigit(byte & 0x0F))
            default:
                bytes.append(byte)
            }
        }
    }

    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }
}

/// A wall-clock time to the millisecond, printed in UTC as
/// `2026-11-26T21:40:00.123Z`.
struct LogTimestamp: Sendable, Hashable {
    /// Seconds since 1970-01-01T00:00:00Z.
    var seconds: Int
    var milliseconds: Int

    init(seconds: Int, milliseconds: Int) {
        self.seconds = seconds
        self.milliseconds = milliseconds
    }

    static func now() -> LogTimestamp {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return LogTimestamp(seconds: Int(time.tv_sec), milliseconds: Int(time.tv_nsec) / 1_000_000)
    }

    func append(to bytes: inout [UInt8]) {
        // Days to a civil date in the proleptic Gregorian calendar (Howard
        // Hinnant's `civil_from_days`), with no call into the C library.
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)

        Self.append(year, width: 4, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        Self.append(month, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "-"))
        Self.append(day, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "T"))
        Self.append(secondOfDay / 3_600, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        Self.append(secondOfDay / 60 % 60, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        Self.append(secondOfDay % 60, width: 2, to: &bytes)
        bytes.append(UInt8(ascii: "."))
        Self.append(milliseconds, width: 3, to: &bytes)
        bytes.append(UInt8(ascii: "Z"))
    }

    /// `value` (not negative) in decimal, zero-padded to `width` digits, more if
    /// it needs them. No allocation.
    private static func append(_ value: Int, width: Int, to bytes: inout [UInt8]) {
        let value = max(value, 0)
        var divisor = 1
        var digits = 1
        while digits < width || value / divisor >= 10 {
            divisor *= 10
            digits += 1
        }
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }
}
