import NIOConcurrencyHelpers

/// An option source that remembers every option name asked of it, by the core,
/// a native module or a Lua module's `module:get_option*`. `nethost check` loads
/// the modules through one, so that the options a Lua module reads while it loads
/// count as used rather than as typos; the registry's tests use one to find
/// options the code reads without declaring them.
public final class RecordingOptions: OptionSource {
    private let base: any OptionSource
    private let asked = NIOLockedValueBox<Set<String>>([])

    public init(_ base: any OptionSource) {
        self.base = base
    }

    /// Every name asked for so far, set or not.
    public var namesAsked: Set<String> { asked.withLockedValue { $0 } }

    public func value(_ name: String, host: String?) -> ConfigValue? {
        record(name)
        return base.value(name, host: host)
    }

    public func hostValue(_ name: String, host: String) -> ConfigValue? {
        record(name)
        return base.hostValue(name, host: host)
    }

    /// A host's definition carries its `enabled` option, which this reads.
    public var definedHosts: [HostDefinition] {
        record(HostDefinition.enabledOption.name)
        return base.definedHosts
    }

    private func record(_ name: String) {
        _ = asked.withLockedValue { $0.insert(name) }
    }
}
