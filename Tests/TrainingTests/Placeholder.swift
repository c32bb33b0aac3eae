import XCTest
@testable import Training

final class TrainingPlaceholderTests: XCTestCase {
    func testModuleLinks() {}
}
