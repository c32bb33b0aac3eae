import Foundation
import XCTest
@testable import Training

final class CheckpointSHA256Tests: XCTestCase {
    /// FIPS 180-2 appendix B and the NIST example vectors.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hash(Array("".utf8)).hexString,
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hash(Array("abc".utf8)).hexString,
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hexString,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hash(Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)).hexString,
                       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        XCTAssertEqual(SHA256.hash([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)).hexString,
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Any split of the message into update calls gives the one-shot digest.
    func testChunkingDoesNotChangeTheDigest() {
        var random = CheckpointRandom(seed: 7)
        let message = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &random) }
        let expected = SHA256.hash(message)
        for _ in 0..<50 {
            var hasher = SHA256()
            var offset = 0
            while offset < message.count {
                let length = min(Int.random(in: 0...130, using: &random), message.count - offset)
                hasher.update(Array(message[offset..<(offset + length)]))
                offset += length
            }
            XCTAssertEqual(hasher.finalize(), expected)
        }
    }

    /// Lengths around the padding boundaries (55/56/64 bytes) and a multi-chunk file, hashed
    /// both in memory and from disk, agree with coreutils' sha256sum.
    func testMatchesSha256sum() throws {
        let directory = try CheckpointTestKit.scratchDirectory(self)
        var random = CheckpointRandom(seed: 11)
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, (1 << 20) * 3 + 17] {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            let file = directory.appendingPathComponent("sample-\(length).bin")
            try Data(bytes).write(to: file)
            let reference = try Self.sha256sum(file)
            XCTAssertEqual(SHA256.hash(bytes).hexString, reference, "length \(length)")
            XCTAssertEqual(try SHA256.hash(fileAt: file).hexString, reference, "file of length \(length)")
        }
    }

    func testMissingFileNamesThePath() {
        let missing = URL(fileURLWithPath: "/nonexistent/polyhead/model.safetensors")
        let error = CheckpointTestKit.checkpointError { _ = try SHA256.hash(fileAt: missing) }
        guard case let .cannotRead(path, _)? = error else { return XCTFail("wrong error \(String(describing: error))") }
        XCTAssertEqual(path, missing.path)
    }

    private static func sha256sum(_ file: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "sha256sum failed")
        return String(decoding: output, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
