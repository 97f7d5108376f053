import Foundation

/// The `pidfile` option: written at start, removed at a clean stop.
struct PIDFile {
    let path: String

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    func write() throws {
        do {
            try "\(ProcessInfo.processInfo.processIdentifier)\n".write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw Failure(description: "could not write the pidfile \(path): \(error.localizedDescription)")
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
