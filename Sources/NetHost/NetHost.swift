// NetHost: the library a Swift service imports. The module manager (Lua modules and
// native ones), the built-in services, and NetHostServer that runs them on the ports.
// `import NetHost` brings the layers a service needs with it (config, logging, core).
@_exported import NetHostConfig
@_exported import NetHostLogging
@_exported import NetHostCore
