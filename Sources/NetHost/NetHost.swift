// The library a Swift service imports: the module manager, native modules and the
// server that runs them. `import NetHost` brings the layers a service needs with it.
@_exported import NetHostConfig
@_exported import NetHostLogging
@_exported import NetHostCore
