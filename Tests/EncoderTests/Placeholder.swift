import XCTest
@testable import Encoder

final class EncoderPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
