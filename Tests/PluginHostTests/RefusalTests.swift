import CPolyhead
import Foundation
import XCTest
@testable import PluginHost

/// Every refusal is a clear one-line error naming the plugin file and what to do, tested
/// with a real built .so, and the process carries on.
final class RefusalTests: XCTestCase {
    private func refusal(defines: [String], output: String, source: String = "fixture_plugin.c",
                         file: StaticString = #filePath, line: UInt = #line) throws -> PluginError {
        let path = try FixtureCompiler.fixture(source, output: output, defines: defines, subdirectory: "refusals")
        do {
            try PluginRegistry().load(file: path)
        } catch let error as PluginError {
            return error
        }
        XCTFail("\(output) loaded but should have been refused", file: file, line: line)
        return PluginError(.refused, "")
    }

    func testNoEntrySymbol() throws {
        let error = try refusal(defines: [], output: "libno-entry.so", source: "no_entry.c")
        XCTAssertEqual(error.kind, .refused)
        assertOneLine(error, contains: ["libno-entry.so", "polyhead_plugin_entry", "not a Polyhead plugin"])
    }

    func testEntryThatIsData() throws {
        let error = try refusal(defines: [], output: "libdata-entry.so", source: "data_entry.c")
        assertOneLine(error, contains: ["libdata-entry.so", "data symbol, not a function"])
    }

    func testFileThatIsNotALibrary() throws {
        let path = (FixtureCompiler.directory as NSString).appendingPathComponent("libtext.so")
        try "not ELF".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try PluginRegistry().load(file: path)) { error in
            assertOneLine(error, contains: ["libtext.so", "not a 64-bit ELF shared library"])
        }
    }

    func testABIMajorMismatchNamesBothVersions() throws {
        let error = try refusal(defines: ["ANSWER_MAJOR=2"], output: "libmajor2.so")
        assertOneLine(error, contains: ["libmajor2.so", "implements ABI 2.0", "speaks ABI \(PH_ABI_MAJOR).\(PH_ABI_MINOR)", "rebuild"])
    }

    func testMinorNewerThanTheHost() throws {
        let error = try refusal(defines: ["ANSWER_MINOR=7"], output: "libminor7.so")
        assertOneLine(error, contains: ["libminor7.so", "needs ABI \(PH_ABI_MAJOR).7", "only up to ABI \(PH_ABI_MAJOR).\(PH_ABI_MINOR)", "upgrade polyhead"])
    }

    func testPluginSizeFieldTooSmall() throws {
        let error = try refusal(defines: ["PLUGIN_SIZE=16"], output: "libsmall-plugin.so")
        assertOneLine(error, contains: ["libsmall-plugin.so", "ph_plugin.size is 16 bytes", "at least \(MemoryLayout<ph_plugin>.size)"])
    }

    func testSizeFieldBelowTheVersionPrefix() throws {
        let error = try refusal(defines: ["PLUGIN_SIZE=4"], output: "libtiny-plugin.so")
        assertOneLine(error, contains: ["libtiny-plugin.so", "less than the 8-byte version prefix"])
    }

    func testMethodTableSizeFieldTooSmall() throws {
        let error = try refusal(defines: ["HEAD_METHODS_SIZE=8"], output: "libsmall-methods.so")
        assertOneLine(error, contains: ["libsmall-methods.so", "fixture.head", "ph_head_methods.size is 8 bytes"])
    }

    func testDuplicateComponentIDAcrossFiles() throws {
        let first = try FixtureCompiler.fixture("fixture_plugin.c", output: "libduplicate-a.so",
                                                defines: ["PLUGIN_ID=\"dup.a\"", "HEAD_ID=\"dup.head\""], subdirectory: "refusals")
        let second = try FixtureCompiler.fixture("fixture_plugin.c", output: "libduplicate-b.so",
                                                 defines: ["PLUGIN_ID=\"dup.b\"", "HEAD_ID=\"dup.head\""], subdirectory: "refusals")
        let registry = PluginRegistry()
        try registry.load(file: first)
        XCTAssertThrowsError(try registry.load(file: second)) { error in
            XCTAssertEqual((error as? PluginError)?.kind, .duplicateComponent)
            assertOneLine(error, contains: ["libduplicate-b.so", "\"dup.head\"", "libduplicate-a.so", "remove one"])
        }
        // The first plugin's components stay usable; none of the second's were registered.
        XCTAssertEqual(try registry.component(id: "dup.head").plugin.id, "dup.a")
        XCTAssertEqual(registry.plugins.count, 1)
    }

    func testSwiftToolchainMismatch() throws {
        let error = try refusal(defines: ["TOOLCHAIN=\"swift 50000 clang 0\""], output: "libother-toolchain.so")
        assertOneLine(error, contains: ["libother-toolchain.so", "swift 50000 clang 0", hostSwiftToolchain, "rebuild the plugin"])
    }

    func testBadExtensionSignature() throws {
        let error = try refusal(defines: ["BAD_SIGNATURE"], output: "libbad-signature.so")
        assertOneLine(error, contains: ["libbad-signature.so", "\"bad\"", "\"q(ii)\"", "'q' is not a return type"])
    }

    func testEntryFunctionRefusingWithItsMessage() throws {
        let error = try refusal(defines: ["ENTRY_FAILS"], output: "libentry-fails.so")
        assertOneLine(error, contains: ["libentry-fails.so", "refused to load", "refuses every host on purpose"])
    }

    func testRefusalIsRememberedWithoutCallingTheEntryAgain() throws {
        let first = try refusal(defines: ["ANSWER_MAJOR=2"], output: "libmajor2.so")
        let second = try refusal(defines: ["ANSWER_MAJOR=2"], output: "libmajor2.so")
        XCTAssertEqual(first, second)
    }

    func testCreateFailingWithItsMessage() throws {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        let component = try registry.component(id: "fixture.head")
        XCTAssertThrowsError(try HeadInstance(component: component, name: "probe", configJSON: #"{"fail_create": true}"#, inputWidth: 4)) { error in
            assertOneLine(error, contains: ["libfixture.so", "fixture.head", "instance \"probe\"", "create failed",
                                            "fail_create is set, so create refuses"])
        }
        XCTAssertThrowsError(try HeadInstance(component: component, name: "probe", configJSON: "[1, 2]", inputWidth: 4)) { error in
            assertOneLine(error, contains: ["fixture.head", "config must be a JSON object"])
        }
        XCTAssertThrowsError(try HeadInstance(component: component, name: "probe", configJSON: "{oops", inputWidth: 4)) { error in
            assertOneLine(error, contains: ["fixture.head", "not valid JSON"])
        }
    }

    func testSwiftHeadCreateFailuresAreOneLine() throws {
        let registry = try loadBuiltHeads()
        let classification = try registry.component(id: "polyhead.classification")
        let cases: [(String, [String])] = [
            (#"{"pooling": "avg", "labels": ["a", "b"]}"#, ["\"pooling\" must be one of cls, mean, max", "\"avg\""]),
            (#"{"labels": ["a", "b"], "dropuot": 0.1}"#, ["unknown config key \"dropuot\""]),
            (#"{"dropout": 0.1}"#, ["needs \"labels\""]),
            (#"{"labels": ["a", "b"], "class_weights": [1]}"#, ["\"class_weights\" must hold 2"]),
        ]
        XCTAssertThrowsError(try HeadInstance(component: registry.component(id: "polyhead.multi_label_classification"), name: "tags",
                                              configJSON: #"{"labels": ["a", "b"], "multi_label": false}"#, inputWidth: 8)) { error in
            assertOneLine(error, contains: ["polyhead.multi_label_classification", "is always multi-label"])
        }
        for (config, fragments) in cases {
            XCTAssertThrowsError(try HeadInstance(component: classification, name: "topic", configJSON: config, inputWidth: 8)) { error in
                assertOneLine(error, contains: ["libClassificationHead.so", "polyhead.classification", "create failed"] + fragments)
            }
        }
    }

    func testForwardReturningAnErrorStatus() throws {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        let component = try registry.component(id: "fixture.head")
        let features = [Float](repeating: 0.5, count: 3 * 4)
        let withMessage = try HeadInstance(component: component, name: "probe", configJSON: #"{"fail_forward": true}"#, inputWidth: 4)
        XCTAssertThrowsError(try features.withUnsafeBufferPointer {
            try withMessage.forward(features: $0, sequenceOffsets: [0, 1, 3], training: true)
        }) { error in
            assertOneLine(error, contains: ["libfixture.so", "fixture.head", "forward failed", "fail_forward is set"])
        }
        let silent = try HeadInstance(component: component, name: "probe", configJSON: #"{"fail_forward": true, "fail_silently": true}"#, inputWidth: 4)
        XCTAssertThrowsError(try features.withUnsafeBufferPointer {
            try silent.forward(features: $0, sequenceOffsets: [0, 1, 3], training: false)
        }) { error in
            assertOneLine(error, contains: ["forward failed", "status 6 (not finite) without a message"])
        }
    }

    func testHostRefusesInconsistentBatchesBeforeThePluginSeesThem() throws {
        let registry = try loadBuiltHeads()
        let head = try HeadInstance(component: registry.component(id: "polyhead.regression"), name: "depth", configJSON: "{}", inputWidth: 4)
        let features = [Float](repeating: 0, count: 12)
        let cases: [([Int64], String)] = [([0, 2, 2], "sequence 1 is empty"), ([1, 3], "must start at 0"), ([0, 2, 4], "features hold 12 values but 4 tokens")]
        for (offsets, fragment) in cases {
            XCTAssertThrowsError(try features.withUnsafeBufferPointer { try head.forward(features: $0, sequenceOffsets: offsets, training: false) }) { error in
                assertOneLine(error, contains: ["polyhead.regression", fragment])
            }
        }
    }
}

final class FinitenessTests: XCTestCase {
    func testNonFiniteOutputsAreCaughtAtTheBoundary() throws {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        let head = try HeadInstance(component: registry.component(id: "fixture.head"), name: "probe", configJSON: #"{"outputs": 1}"#, inputWidth: 3)
        let weight = try XCTUnwrap(head.parameters.info(named: "probe.weight"))
        head.parameters.values(of: weight)[2] = .nan
        let features: [Float] = [1, 2, 3, 4, 5, 6]
        XCTAssertThrowsError(try features.withUnsafeBufferPointer { try head.forward(features: $0, sequenceOffsets: [0, 2], training: false) }) {
            assertOneLine($0, contains: ["libfixture.so", "fixture.head", "forward produced a non-finite value (nan) at element 0"])
        }
    }

    func testFiniteCheckCoversEveryLaneAndTheTail() {
        for count in [1, 7, 8, 9, 17, 64] {
            for position in 0..<count {
                var values = [Float](repeating: 1, count: count)
                values[position] = position % 2 == 0 ? .infinity : -.nan
                XCTAssertFalse(values.withUnsafeBufferPointer(allFinite), "count \(count), position \(position)")
            }
            let finite = (0..<count).map { Float($0) * 1e30 - Float.greatestFiniteMagnitude / 2 }
            XCTAssertTrue(finite.withUnsafeBufferPointer(allFinite))
        }
    }
}
