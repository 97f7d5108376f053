import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

/// How `nethost check` sorts a config's options: used, accepted from Prosody
/// without use, or unknown with a "did you mean" for a near miss.
@Suite("Option usage report")
struct OptionUsageReportTests {
    static func report(_ source: String, services: Set<String> = [], namesRead: Set<String> = []) throws -> OptionUsageReport {
        let configuration = try ConfigTests.configuration(source)
        return OptionUsageReport(configuration: configuration, registry: .core, services: services, namesRead: namesRead)
    }

    /// Before the registry, check called lua_memory_limit unknown and local_interfaces
    /// used although nothing read it; ssl was "accepted, not used".
    @Test("options the core reads are used; Prosody's leftovers accepted; the rest unknown")
    func sorted() throws {
        let usage = try Self.report("""
            lua_memory_limit = 64 * 1024 * 1024
            lua_instruction_budget = 1000000
            ssl = { protocol = "tlsv1_2+" }
            local_interfaces = { "127.0.0.1" }
            daemonize = false
            data_path = "/var/lib/prosody"
            echo_ports = { 7 }
            VirtualHost "h"
                mystery_option = 1
                c2s_ports = { 5222 }
            """, services: ["echo"])
        #expect(usage.used == ["echo_ports", "local_interfaces", "lua_instruction_budget", "lua_memory_limit", "ssl"])
        #expect(usage.accepted == ["c2s_ports", "daemonize", "data_path"])
        #expect(usage.unknown == [OptionUsageReport.Unknown(name: "mystery_option", suggestion: nil)])
    }

    @Test("a near miss of a known name is unknown, with a suggestion", arguments: [
        ("modules_enabeld", "modules_enabled"),   // two letters swapped
        ("lua_memory_limt", "lua_memory_limit"),  // one left out
        ("echo_port", "echo_ports"),              // a service option of a loaded service
        ("daemonise", "daemonize"),               // an accepted Prosody option
        ("intrefaces", "interfaces"),
        ("lgo", "log"),
    ])
    func suggestion(name: String, expected: String) throws {
        let usage = try Self.report("\(name) = true", services: ["echo"])
        #expect(usage.unknown.map(\.description) == ["\(name) (did you mean \(expected)?)"])
    }

    @Test("a name far from every known one gets no suggestion", arguments: ["mystery_option", "xyz", "storage_backend_url"])
    func noSuggestion(name: String) throws {
        let usage = try Self.report("\(name) = true")
        #expect(usage.unknown == [OptionUsageReport.Unknown(name: name, suggestion: nil)])
    }

    @Test("an option a module asked for while loading is used, even one Prosody's list has")
    func readByModule() throws {
        let usage = try Self.report("""
            chat_max_line_length = 512
            admins = { "a@example.com" }
            chat_max_line_lenght = 3
            """, namesRead: ["chat_max_line_length", "admins", "never_set"])
        #expect(usage.used == ["admins", "chat_max_line_length"])
        #expect(usage.accepted.isEmpty)
        #expect(usage.unknown.map(\.description) == ["chat_max_line_lenght (did you mean chat_max_line_length?)"])
    }

    @Test("edit distance counts a swap of neighbours as one edit", arguments: [
        ("", "abc", 3), ("abc", "abc", 0), ("abc", "acb", 1), ("kitten", "sitting", 3),
        ("proxy_trusted_proxy", "proxy_trusted_proxies", 3),
    ])
    func editDistance(a: String, b: String, distance: Int) {
        #expect(OptionSuggestion.editDistance(a, b) == distance)
        #expect(OptionSuggestion.editDistance(b, a) == distance)
    }

    @Test("of two equally close names the alphabetically first is suggested")
    func tie() {
        #expect(OptionSuggestion.closest(to: "abcd_x", among: ["abcd_z", "abcd_y"]) == "abcd_y")
        #expect(OptionSuggestion.closest(to: "abcd_x", among: ["abcd_y", "abcd_z"]) == "abcd_y")
    }
}
