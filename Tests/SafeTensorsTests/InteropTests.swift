import Foundation
import XCTest
@testable import SafeTensors

/// Files crossing between Python's safetensors and this module, in both directions, and the
/// real MiniLM checkpoint. Fixtures come from scripts/reference/safetensors_check.py.
final class InteropTests: XCTestCase {
    private struct ExpectedFile: Decodable {
        let metadata: [String: String]
        let tensors: [String: ExpectedTensor]
    }

    private struct ExpectedTensor: Decodable {
        let dtype: String
        let shape: [Int]
        let float32_bits: [UInt32]?
        let int64: [String]?
    }

    func testReadsPythonWrittenFile() throws {
        let expected = try JSONDecoder().decode(
            ExpectedFile.self, from: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("python_written.json")))
        let file = try SafeTensorsFile(contentsOf: TestPaths.fixtures.appendingPathComponent("python_written.safetensors"))
        XCTAssertEqual(file.metadata, expected.metadata)
        XCTAssertEqual(Set(file.tensorNames), Set(expected.tensors.keys))
        XCTAssertEqual(Set(expected.tensors.values.map(\.dtype)), ["F32", "F16", "BF16", "I64"], "fixture lost a dtype")
        for (name, tensor) in expected.tensors {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype.rawValue, tensor.dtype, name)
            XCTAssertEqual(info.shape, tensor.shape, name)
            if let bits = tensor.float32_bits {
                // Bit equality: NaN payloads and signed zeros must match numpy's and torch's widening.
                XCTAssertEqual(try file.floats(name).map(\.bitPattern), bits, name)
            } else if let values = tensor.int64 {
                XCTAssertEqual(try file.int64s(name), values.compactMap { Int64($0) }, name)
                XCTAssertEqual(values.count, info.elementCount, name)
            } else {
                XCTFail("\(name): fixture entry has no values")
            }
        }
    }

    private struct WriterInputs: Decodable {
        struct Tensor: Decodable {
            let name: String
            let shape: [Int]
            let source: String
            let float32_bits: [UInt32]?
            let int64: [String]?
        }
        let metadata: [String: String]
        let tensors: [Tensor]
    }

    /// The Swift writer must still produce the committed bytes that Python's safetensors
    /// checked. POLYHEAD_WRITE_FIXTURES=1 rewrites the fixture instead (then rerun the script).
    func testWriterReproducesCommittedFile() throws {
        let inputs = try JSONDecoder().decode(
            WriterInputs.self, from: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("polyhead_written.json")))
        var writer = SafeTensorsWriter()
        writer.metadata = inputs.metadata
        for tensor in inputs.tensors {
            switch tensor.source {
            case "floats":
                try writer.add(tensor.name, shape: tensor.shape, floats: (tensor.float32_bits ?? []).map(Float.init(bitPattern:)))
            case "float32Buffer":
                let values = (tensor.float32_bits ?? []).map(Float.init(bitPattern:))
                try values.withUnsafeBufferPointer { try writer.add(tensor.name, shape: tensor.shape, float32Buffer: $0) }
            case "int64s":
                let values = try (tensor.int64 ?? []).map { text in
                    guard let value = Int64(text) else { throw CocoaError(.coderInvalidValue) }
                    return value
                }
                try writer.add(tensor.name, shape: tensor.shape, int64s: values)
            default:
                XCTFail("polyhead_written.json: unknown source '\(tensor.source)' for \(tensor.name)")
            }
        }
        let url = TestPaths.fixtures.appendingPathComponent("polyhead_written.safetensors")
        if ProcessInfo.processInfo.environment["POLYHEAD_WRITE_FIXTURES"] == "1" {
            try writer.write(to: url)
        }
        let committed = try Data(contentsOf: url)
        XCTAssertEqual([UInt8](committed), try writer.data(),
                       "the writer's output changed; if intended, rerun with POLYHEAD_WRITE_FIXTURES=1 and scripts/reference/safetensors_check.py")
        // And the reader gets the inputs back.
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, inputs.metadata)
        XCTAssertEqual(Set(file.tensorNames), Set(inputs.tensors.map(\.name)))
    }

    private struct SpotValues: Decodable {
        struct Tensor: Decodable {
            let dtype: String
            let shape: [Int]
            let sum: Double
            let leading_float32_bits: [UInt32]?
            let leading_int64: [String]?
        }
        let metadata: [String: String]
        let names_in_offset_order: [String]
        let tensors: [String: Tensor]
    }

    func testReadsMiniLMCheckpoint() throws {
        let url = try TestPaths.modelDirectory().appendingPathComponent("model.safetensors")
        let spots = try JSONDecoder().decode(
            SpotValues.self, from: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("minilm_spot_values.json")))
        let file = try SafeTensorsFile(contentsOf: url)
        XCTAssertEqual(file.metadata, spots.metadata)
        XCTAssertEqual(file.tensorNames, spots.names_in_offset_order)

        let embeddings = try file.info("embeddings.word_embeddings.weight")
        XCTAssertEqual(embeddings.shape, [30522, 384])
        XCTAssertEqual(embeddings.dtype, .f32)
        XCTAssertEqual(embeddings.elementCount, 30522 * 384)

        for (name, expected) in spots.tensors {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype.rawValue, expected.dtype, name)
            XCTAssertEqual(info.shape, expected.shape, name)
            if let leading = expected.leading_float32_bits {
                let values = try file.floats(name)
                XCTAssertEqual(values.prefix(leading.count).map(\.bitPattern), leading, name)
                // Sequential double sum vs numpy's pairwise one: both far below this tolerance.
                let sum = values.reduce(0.0) { $0 + Double($1) }
                XCTAssertEqual(sum, expected.sum, accuracy: 1e-6 * max(1, abs(expected.sum)), name)
            } else if let leading = expected.leading_int64 {
                let values = try file.int64s(name)
                XCTAssertEqual(values.prefix(leading.count).map(String.init), leading, name)
                XCTAssertEqual(Double(values.reduce(0, +)), expected.sum, name)
            }
        }

        // copyFloats into one shared block matches floats() for the largest tensor.
        let count = embeddings.elementCount
        let block = UnsafeMutableBufferPointer<Float>.allocate(capacity: count + 8)
        defer { block.deallocate() }
        try file.copyFloats("embeddings.word_embeddings.weight", into: UnsafeMutableBufferPointer(rebasing: block[8..<(count + 8)]))
        let direct = try file.floats("embeddings.word_embeddings.weight")
        XCTAssertTrue(direct.elementsEqual(block[8...]), "copyFloats and floats disagree")
    }
}
