import NetHost

/// The native modules this target provides.
public enum ProxyModules {
    public static let all: [any NativeModule.Type] = [NetProxyModule.self]
}
