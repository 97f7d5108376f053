import NetHost
import ProxyProtocol

extension Connection {
    /// The PROXY header the connection came with, when `net_proxy` accepted it.
    public var proxyHeader: ProxyHeader? { origin as? ProxyHeader }
}
