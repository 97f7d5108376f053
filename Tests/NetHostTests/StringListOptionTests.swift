import NIOCore
import NetHostTestSupport
import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// One reading of a list of names for every option and every option source: a
/// set comes sorted (Lua's own order is its hash table's, different from run to
/// run); a value that is not a list of names is reported, not half-read.
@Suite("String list options")
struct StringListOptionTests {
    static let names = ["alpha", "bravo", "charlie", "delta", "demo_echo", "foxtrot", "golf", "hotel"]
    static let set = ConfigValue.table(ConfigTable(map: Dictionary(uniqueKeysWithValues: names.map { (ConfigKey.string($0), ConfigValue.boolean(true)) })))

    /// Before, FixedOptions and LiveOptions (the OptionSource extension) kept the set's
    /// hash order while Configuration sorted: with eight names a run in sorted order by chance is 1 in 40,320.
    @Test("a set-form list reads sorted from every option source")
    func setIsSorted() throws {
        let fixed = FixedOptions(global: ["modules_enabled": Self.set])
        let configuration = try ConfigTests.configuration(
            "modules_enabled = { " + Self.names.reversed().map { "\($0) = true" }.joined(separator: ", ") + " }"
        )
        for source in [fixed, configuration, LiveOptions(fixed), RecordingOptions(configuration)] as [any OptionSource] {
            #expect(source.stringList("modules_enabled") == Self.names, "\(type(of: source))")
            #expect(try source.stringList(ModuleOptions.modulesEnabled) == Self.names, "\(type(of: source))")
        }
    }

    @Test("set-form modules_enabled loads in name order, after the list part")
    func modulesInNameOrder() {
        var table = ConfigTable(array: [.string("zulu")])
        if case .table(let members) = Self.set { table.map = members.map }
        let options = FixedOptions(global: ["modules_enabled": .table(table)])
        #expect(ModuleManager.enabledModules(in: options) == ["zulu"] + Self.names)
    }

    @Test("a module list that is not a list of names is a problem, and is ignored")
    func badModuleList() {
        let plan = ModulePlan(options: FixedOptions(
            global: ["modules_enabled": .list(.string("demo_echo"), .integer(5))],
            hosts: ["example.com": ["modules_disabled": .integer(1)]]
        ))
        #expect(plan.global.isEmpty)
        #expect(plan.problems == [
            "modules_enabled: expected a list of strings, but item 2 is a number; it is ignored",
            "modules_disabled under \"example.com\": expected a string or a list of strings like { \"a\", \"b\" }, got a number; it is ignored",
        ])
    }

    /// Before, `interfaces = { "127.0.0.1", 5 }` silently listened on 127.0.0.1 only.
    @Test("interfaces that are not a list of addresses are a problem, and that service does not listen")
    func badInterfaces() {
        let plan = ListenPlan(
            services: [ListenPlanTests.service("demo_echo"), ListenPlanTests.service("admin", isPrivate: true)],
            options: FixedOptions(global: [
                "interfaces": .list(.string("127.0.0.1"), .integer(5)),
                "local_interfaces": .table(ConfigTable(map: [.string("::1"): .string("yes")])),
            ]))
        #expect(plan.entries.isEmpty)
        #expect(plan.problems == [
            "interfaces: expected a list of strings, but item 2 is a number; service 'demo_echo' does not listen",
            "local_interfaces: expected a list of strings or a set like { a = true }, but [\"::1\"] is a string; service 'admin' does not listen",
        ])
    }
}
