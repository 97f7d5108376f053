import NetHostConfig
import NIOConcurrencyHelpers

/// The options of the config currently in force. A reload swaps the whole
/// source at once, so a reader never sees half of one config and half of another.
public final class LiveOptions: OptionSource {
    private let current: NIOLockedValueBox<any OptionSource>

    public init(_ options: any OptionSource) {
        self.current = NIOLockedValueBox(options)
    }

    public func value(_ name: String, host: String?) -> ConfigValue? {
        current.withLockedValue { $0 }.value(name, host: host)
    }

    public var definedHosts: [HostDefinition] { current.withLockedValue { $0 }.definedHosts }

    public func hostValue(_ name: String, host: String) -> ConfigValue? {
        current.withLockedValue { $0 }.hostValue(name, host: host)
    }

    public var snapshot: any OptionSource { current.withLockedValue { $0 } }

    package func replace(with options: any OptionSource) {
        current.withLockedValue { $0 = options }
    }
}

/// A value read per connection that a reload may replace (network settings).
public final class LiveValue<Value: Sendable>: Sendable {
    private let box: NIOLockedValueBox<Value>

    public init(_ value: Value) { box = NIOLockedValueBox(value) }

    public var value: Value {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}
