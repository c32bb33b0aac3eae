import XCTest
@testable import PluginHost

final class PluginHostPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
