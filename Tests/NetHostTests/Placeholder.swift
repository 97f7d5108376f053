import Testing
@Test func placeholderNetHostTests() { #expect(true) }
