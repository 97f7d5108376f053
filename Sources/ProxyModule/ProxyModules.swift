// ProxyModule: the native `net_proxy` module. Its trust list and options, the PROXY
// header stage in front of a service, and how a header appears to Lua
// (`conn:proxyheader()`) and to Swift services (`connection.proxyHeader`).
import NetHost

/// The native modules this target provides.
public enum ProxyModules {
    public static let all: [any NativeModule.Type] = [NetProxyModule.self]
}
