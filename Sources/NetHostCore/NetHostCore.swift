// NetHostCore: the host core. Connections and their listeners, services and ports,
// timers on the loop's clock, TLS. Knows neither Lua nor the PROXY protocol: a listener
// that needs per-connection state keeps it in `Connection.listenerSlot`, and a
// connection's origin is any `Sendable` value the stage that made it chose.
