import NetHostConfig
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Prosody's own Lua library (`util/`, `net/`, `core/`), which Prosody modules
/// `require`: NetHost does not rewrite it but puts it on `require`'s path, found
/// where Debian's `prosody` package installs it unless `prosody_library_path` says
/// otherwise. Its C modules are built for Lua 5.4, which NetHost's state is.
public enum ProsodyLibrary {
    public static let defaultPath = "/usr/lib/prosody"

    public static let option = OptionDeclaration(
        "prosody_library_path", .string, default: defaultPath, scope: .global,
        help: "the folder of Prosody's Lua library (util/, net/, core/) that Prosody modules require; Debian's prosody package installs it",
        reload: .restart(reason: "put on require's path when the Lua state is made, at start")
    )

    /// How the error for a library module asked for while the library is missing
    /// starts: it says all there is to say, so its traceback is left out.
    public static let missingMessagePrefix = "module needs "

    /// The folder asked for: the option (relative to the config's folder), else the default.
    static func wanted(in options: any OptionSource, relativeTo directory: String) -> String {
        guard let path = options.value(option)?.stringValue else { return defaultPath }
        return path.hasPrefix("/") ? path : directory + "/" + path
    }

    /// The folder, if Prosody's library is there (it has `util/`).
    static func installed(in options: any OptionSource, relativeTo directory: String) -> String? {
        let path = wanted(in: options, relativeTo: directory)
        var status = stat()
        guard stat(path + "/util", &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return path
    }
}
