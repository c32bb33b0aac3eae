import XCTest
@testable import PluginHost

/// The host's random stream: what plugins draw dropout masks and gate noise from.
final class RandomStreamTests: XCTestCase {
    /// `fillUniform` (rng_uniform, used for dropout masks) gives exactly the numbers of
    /// successive `uniform()` calls and leaves the stream where they would.
    func testFillUniformMatchesOneByOneDraws() {
        let one = RandomStream(seed: 42, name: "adapters/lora")
        let many = RandomStream(seed: 42, name: "adapters/lora")
        XCTAssertEqual(one.position, many.position)
        let expected = (0..<1_003).map { _ in one.uniform() }
        var got = [Float](repeating: -1, count: expected.count)
        got.withUnsafeMutableBufferPointer { many.fillUniform($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(got, expected)
        XCTAssertEqual(many.position, one.position)
        XCTAssertEqual(many.next(), one.next())
        XCTAssertTrue(expected.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertGreaterThan(Set(expected).count, 990, "uniforms should rarely repeat")
    }

    /// Streams differ by name and by seed.
    func testStreamsDependOnSeedAndName() {
        let base = RandomStream(seed: 1, name: "a").next()
        XCTAssertNotEqual(RandomStream(seed: 2, name: "a").next(), base)
        XCTAssertNotEqual(RandomStream(seed: 1, name: "b").next(), base)
        XCTAssertEqual(RandomStream(seed: 1, name: "a").next(), base)
    }
}
