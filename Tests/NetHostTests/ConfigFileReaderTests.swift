import Testing
@testable import NetHost
@testable import NetHostConfig
@testable import NetHostCore
@testable import NetHostLua
@testable import NetHostLogging

extension ConfigTests {
    @Suite("FileContents, FileLine, FileLines")
    struct FileReaders {
        @Test("they read files relative to the config's folder")
        func readers() throws {
            let folder = try ConfigFolder()
            try folder.write("secrets/password", "hunter2\nsecond line\n")
            try folder.write("secrets/admins", "alice@example.com\r\nbob@example.com\n\ncarol@example.com")
            try folder.write("motd.txt", "Welcome!\nBe nice.\n")
            try folder.write("prosody.cfg.lua", """
                motd_text = FileContents "motd.txt"
                component_secret = FileLine "secrets/password"
                admins = FileLines "secrets/admins"
                """)
            let config = try folder.load().configuration
            #expect(config.string("motd_text") == "Welcome!\nBe nice.\n")
            #expect(config.string("component_secret") == "hunter2")
            #expect(config.value("admins") == list("alice@example.com", "bob@example.com", "", "carol@example.com"))
        }

        @Test("in an included file they read relative to that file's folder")
        func fromInclude() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "Include \"conf.d/secret.cfg.lua\"\n")
            try folder.write("conf.d/secret.cfg.lua", "component_secret = FileLine \"secret.txt\"\n")
            try folder.write("conf.d/secret.txt", "s3cret")
            #expect(try folder.load().configuration.string("component_secret") == "s3cret")
        }

        @Test("an empty file gives an empty string and no lines")
        func empty() throws {
            let folder = try ConfigFolder()
            try folder.write("empty", "")
            try folder.write("prosody.cfg.lua", """
                all = FileContents "empty"
                first = FileLine "empty"
                lines = FileLines "empty"
                """)
            let config = try folder.load().configuration
            #expect(config.string("all") == "")
            #expect(config.string("first") == "")
            #expect(config.value("lines") == .table(ConfigTable()))
        }

        @Test("a missing file is an error at the line that reads it, naming the file")
        func missing() throws {
            let folder = try ConfigFolder()
            try folder.write("prosody.cfg.lua", "x = 1\nsecret = FileLine \"nope.txt\"\n")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.line == 2)
            #expect(error.message == "FileLine: cannot read \"\(folder.file("nope.txt"))\": No such file or directory")
        }

        @Test("Credential reads from $CREDENTIALS_DIRECTORY, as in Prosody 13")
        func credential() throws {
            let folder = try ConfigFolder()
            try folder.write("creds/db_password", "pa55")
            try folder.write("prosody.cfg.lua", "sql_password = Credential \"db_password\"\n")
            let config = try folder.load(environment: ["CREDENTIALS_DIRECTORY": folder.file("creds")]).configuration
            #expect(config.string("sql_password") == "pa55")
            let error = try #require(throws: ConfigError.self) { try folder.load() }
            #expect(error.message == "Credential() needs the CREDENTIALS_DIRECTORY environment variable")
        }
    }
}
