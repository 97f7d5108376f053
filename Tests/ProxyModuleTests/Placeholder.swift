import Testing
@Test func placeholderProxyModuleTests() { #expect(true) }
