import CoreMetrics

/// Lua callbacks that failed, per module, through swift-metrics: every error a
/// connection callback or a timer raised as `nethost_lua_callback_errors_total`
/// (`module`, `callback`), and, among them, those stopped at `lua_instruction_budget`
/// as `nethost_lua_budget_stops_total` (`module`). Counted where the error is caught,
/// which is off the path of a callback that succeeds. On the Lua loop only, as the
/// Lua state is, so the cache needs no lock.
final class LuaCallbackFailures {
    private let factory: any MetricsFactory
    private var errors: [String: Counter] = [:]
    private var budgetStops: [String: Counter] = [:]

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// A callback of `module` (`onincoming`, `timer`, ...) raised an error.
    func record(module: String, callback: String, budgetExceeded: Bool) {
        let key = module + " " + callback
        // One counter per module and callback, made once: a failing callback may fail often.
        let errorCounter = errors[key] ?? Counter(
            label: "nethost_lua_callback_errors_total", dimensions: [("module", module), ("callback", callback)], factory: factory
        )
        errors[key] = errorCounter
        errorCounter.increment()
        guard budgetExceeded else { return }
        let stopCounter = budgetStops[module] ?? Counter(
            label: "nethost_lua_budget_stops_total", dimensions: [("module", module)], factory: factory
        )
        budgetStops[module] = stopCounter
        stopCounter.increment()
    }
}
