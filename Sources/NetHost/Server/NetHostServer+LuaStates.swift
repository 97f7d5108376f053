import Logging
import NetHostConfig
import NetHostCore
import NetHostLua
import NIOCore

/// One Lua state per event loop (`lua_per_loop_services`), as HAProxy's
/// `lua-load-per-thread` and OpenResty's workers give: the primary state (Prosody's
/// one state, on `luaLoop`, with the native modules beside it) and, when the option
/// names a service, one more state on each other loop, loading the same Lua modules
/// into its own registry (`LoopLocalServices`). What every state does:
///
/// - loads the Lua modules of `modules_enabled` at start and follows each reload
///   (the primary state first: if it refuses the new config, no state changes);
/// - runs its own timers, hooks and `module:shared` tables;
/// - gets the global events: server-started, config-reloaded, server-stopping,
///   server-cleanup and server-stopped.
///
/// Native modules load once; SIGUSR1's statistics and the module list come from the
/// primary state. What the states share is only `require "nethost.shared"`.
extension NetHostServer {
    /// The loops of the Lua states, in the order of their numbers (`shared.state()`):
    /// the primary Lua loop first.
    public var luaStateLoops: [any EventLoop] {
        [luaLoop] + otherLuaStates.map(\.eventLoop)
    }

    /// `lua_per_loop_services` as the config sets it; a wrong value is logged, a problem, and none.
    static func perLoopLua(in options: any OptionSource, logger: Logger, problems: ProblemLog) -> PerLoopLua {
        var found: [String] = []
        let perLoop = PerLoopLua(options: options, problems: &found)
        for problem in found {
            logger.error("\(problem)")
            problems.add(problem)
        }
        return perLoop
    }

    /// Once the states have loaded: names in the option that no Lua module provides
    /// (a typo does nothing, so it is said), and how many states run.
    static func report(_ perLoop: PerLoopLua, states: Int, services: ServiceRegistry, logger: Logger, problems: ProblemLog) {
        for name in perLoop.services.sorted() where name != "*" && !(services.service(named: name)?.listener is LuaListener) {
            let problem = "lua_per_loop_services names '\(name)', which no loaded Lua module provides as a service: it has no effect"
            logger.warning("\(problem)")
            problems.add(problem)
        }
        guard perLoop.isEnabled else { return }
        logger.info(
            "Lua services \(perLoop.services.sorted().joined(separator: ", ")) run in one Lua state per event loop",
            metadata: ["lua_states": "\(states)"]
        )
    }

    /// Makes and loads the Lua state of each loop in `loops` (numbered 2 and up), each on its loop.
    static func loadOtherLuaStates(
        on loops: [any EventLoop], placement: LuaStatePlacement, loopLocal: LoopLocalServices,
        group: any EventLoopGroup, configuration: Options, finder: LuaModuleFinder, logger: Logger,
        problems: ProblemLog, shedding: LoadShedding, status: HostStatus
    ) async throws -> [NIOLoopBound<ModuleManager>] {
        var states: [NIOLoopBound<ModuleManager>] = []
        for (offset, loop) in loops.enumerated() {
            var placement = placement
            placement.index = offset + 2
            let services = loopLocal.registry(of: loop) ?? ServiceRegistry()
            var stateLogger = logger
            stateLogger[metadataKey: "lua_state"] = "\(placement.index)"
            let state = stateLogger
            let index = placement.index
            // What failed here and not in the primary state is a problem of its own
            // (`nethost check`); the same failure in every state is reported once.
            let own = ProblemLog()
            do {
                states.append(try await loop.submit {
                    let manager = try ModuleManager(
                        group: group, luaLoop: loop, options: configuration.options, services: services,
                        natives: configuration.nativeModules, finder: finder, configDirectory: configuration.configDirectory,
                        logger: state, problems: own, notes: ProblemLog(), shedding: shedding, status: status,
                        luaStates: placement
                    )
                    manager.loadEnabledModules()
                    return NIOLoopBound(manager, eventLoop: loop)
                }.get())
                let known = Set(problems.all)
                for problem in own.all where !known.contains(problem) {
                    problems.add("Lua state \(index) (lua_per_loop_services): \(problem)")
                }
            } catch {
                for made in states { try? await made.eventLoop.submit { made.value.stop() }.get() }
                throw StartFailure(description: "Lua state \(index) (lua_per_loop_services) could not start: \(error)")
            }
        }
        return states
    }

    /// Runs `body` with each Lua state's module manager on its own loop, the primary
    /// state first, one after the other; returns once all have.
    func onEveryLuaState(_ body: @escaping @Sendable (ModuleManager) -> Void) async {
        for state in [modules] + otherLuaStates {
            try? await state.eventLoop.submit { body(state.value) }.get()
        }
    }

    /// `onEveryLuaState` without waiting.
    func executeOnEveryLuaState(_ body: @escaping @Sendable (ModuleManager) -> Void) {
        for state in [modules] + otherLuaStates {
            state.eventLoop.execute { body(state.value) }
        }
    }

    /// After the primary state has taken a new config: the other states reload their
    /// Lua modules as it did (changed files, modules added or removed). They have no
    /// native module to refuse the config, so they do not fail as a whole; a module
    /// that fails in one is logged with its state's number.
    func reloadOtherLuaStates() async {
        for state in otherLuaStates {
            do {
                try await state.eventLoop.submit { try state.value.reload() }.get()
            } catch {
                logger.error("Lua state on another event loop did not reload: \(error)")
            }
        }
    }
}
