import Logging
import LuaBridge
import NetHostConfig
import NetHostCore
import NIOCore

/// A module written in Swift, loaded by name from `modules_enabled` like a Lua one.
///
/// The module manager creates it with a context, then calls `load()`; it calls
/// `unload()` before it removes the module's services.
public protocol NativeModule: AnyObject, Sendable {
    /// The name used in `modules_enabled`.
    static var name: String { get }
    /// The options the module reads (through `ModuleContext.option`) or that
    /// configure its services in particular, for the option registry: `nethost
    /// check` and `nethost check --options` use them. Every service's `NAME_ports`
    /// and the like are the host's and need no declaration here.
    static var declaredOptions: [OptionDeclaration] { get }
    /// Methods the module adds to Lua's `conn` object, for every connection (net_proxy:
    /// `proxyip`, `proxyport`, `proxyheader`). Argument 1 is the connection
    /// (`stack.checkUserdata(1, as: Connection.self, ...)`).
    static var luaConnectionMethods: [String: LuaFunction] { get }
    init(context: ModuleContext) throws
    func load() throws
    /// Called once every module in `modules_enabled` has had its turn, so a
    /// module can check what others provide (net_proxy checks its mappings).
    func allModulesLoaded()
    /// The config was reloaded: check the module's options in `context.options`
    /// (already the new ones) and return what applies them, or throw to refuse
    /// the reload as a whole. Nothing may change before the returned closure runs.
    func prepareReload() throws -> @Sendable () -> Void
    /// An operator asked for the counters (SIGUSR1): log what the module
    /// counts, if anything (net_proxy: one line per port, by outcome).
    func logStatistics()
    func unload()
}

extension NativeModule {
    public static var declaredOptions: [OptionDeclaration] { [] }
    public static var luaConnectionMethods: [String: LuaFunction] { [:] }
    public func load() throws {}
    public func allModulesLoaded() {}
    public func prepareReload() throws -> @Sendable () -> Void { {} }
    public func logStatistics() {}
    public func unload() {}
}

/// An error in a module's options that must stop start-up (as a config syntax
/// error does), rather than only skip the module.
public protocol ModuleConfigurationError: Error, CustomStringConvertible {}

/// What the host offers a native module.
public struct ModuleContext: Sendable {
    public let name: String
    /// "*" for a global module.
    public let host: String
    public let options: any OptionSource
    public let logger: Logger
    public let services: ServiceRegistry
    public let group: any EventLoopGroup
    public let luaLoop: any EventLoop
    /// Where a module offers connections the host may close at `max_connections`
    /// rather than refuse a new one (see `LoadShedding`).
    public let shedding: LoadShedding
    /// The server's load and whether it is leaving (a graceful stop has begun).
    public let status: HostStatus
    let problems: ProblemLog

    /// Registers a network service provided by this module.
    public func provide(_ service: NetService) throws {
        try services.add(service)
    }

    /// The option for this module's host, else the global one. Read only options
    /// the module declares in `declaredOptions`.
    public func option(_ option: OptionDeclaration) -> ConfigValue? {
        options.value(option, host: host == "*" ? nil : host)
    }

    /// Records a problem `nethost check` should report (and logs it as a warning).
    public func reportProblem(_ message: String) {
        logger.warning("\(message)")
        problems.add("\(name): \(message)")
    }
}
