import XCTest
@testable import Encoder

final class PackedBatchTests: XCTestCase {
    func testPositionsRestartPerSequence() throws {
        let batch = try PackedBatch(sequences: [[5, 6, 7], [8], [9, 10]], tokenTypes: [[0, 0, 1], [0], [1, 1]])
        XCTAssertEqual(batch.positions, [0, 1, 2, 0, 0, 1])
        XCTAssertEqual(batch.sequenceOffsets, [0, 3, 4, 6])
        XCTAssertEqual(batch.tokenTypeIds, [0, 0, 1, 0, 1, 1])
        XCTAssertEqual(batch.maxSequenceLength, 3)
    }

    func testMalformedBatchesAreRefused() {
        XCTAssertThrowsError(try PackedBatch(tokenIds: [1, 2, 3], sequenceOffsets: [0, 2]))
        XCTAssertThrowsError(try PackedBatch(tokenIds: [1, 2, 3], sequenceOffsets: [0, 0, 3]))
        XCTAssertThrowsError(try PackedBatch(tokenIds: [1, 2], tokenTypeIds: [0], sequenceOffsets: [0, 2]))
        XCTAssertThrowsError(try PackedBatch(sequences: []))
    }

    func testIdsOutsideTheModelAreRefusedBeforeAnyCompute() throws {
        let (encoder, _) = try BertEncoder.load(modelDirectory: Fixtures.tinyModel)
        XCTAssertThrowsError(try encoder.infer(try PackedBatch(sequences: [[1, 99]]))) { error in
            XCTAssertTrue("\(error)".contains("vocab_size 99"), "\(error)")
        }
        XCTAssertThrowsError(try encoder.infer(try PackedBatch(sequences: [[1, 2]], tokenTypes: [[0, 2]])))
        XCTAssertThrowsError(try encoder.infer(try PackedBatch(sequences: [[Int32](repeating: 1, count: 65)]))) { error in
            XCTAssertTrue("\(error)".contains("max_position_embeddings 64"), "\(error)")
        }
    }
}
