// NetHostCore: the host core. Connections and their listeners, services and ports,
// timers on the loop's clock, TLS. Knows neither Lua nor the PROXY protocol: a listener
// that needs per-connection state keeps it in `Connection.listenerSlot`, and a
// connection's origin is any `Sendable` value the stage that made it chose.

/// NetHost's version, as `nethost --version` prints it and `prosody.version` carries it.
public enum NetHostVersion {
    public static let current = "0.1.0"
    /// The Prosody release whose module API NetHost follows.
    public static let prosodyModuleAPI = "0.12"
}
