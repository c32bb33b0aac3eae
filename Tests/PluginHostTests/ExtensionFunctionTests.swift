import CPolyhead
import Foundation
import XCTest
@testable import PluginHost

/// Extension functions: signatures validated at load, called through libffi with every type
/// letter, arguments from the command line, errors through the `e` sink.
final class ExtensionFunctionTests: XCTestCase {
    private func fixture() throws -> PluginRegistry {
        let registry = PluginRegistry()
        try registry.load(file: try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so"))
        return registry
    }

    func testSignatureParsing() throws {
        let (returned, arguments) = try ExtensionFunction.parse(signature: "d(tte)")
        XCTAssertEqual(returned, .double)
        XCTAssertEqual(arguments, [.tensor, .tensor, .errorSink])
        XCTAssertEqual(try ExtensionFunction.parse(signature: "v()").1, [])
        for bad in ["", "d", "dtt", "t(d)", "d(x)", "d(ee)", "d(" + String(repeating: "i", count: 17) + ")", "v(v)"] {
            XCTAssertThrowsError(try ExtensionFunction.parse(signature: bad), "\"\(bad)\" should be refused")
        }
    }

    func testEveryTypeLetterRoundTripsThroughLibffi() throws {
        let registry = try fixture()
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.add_int32").call([.int32(40), .int32(2)]), .int32(42))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.add_int32").call([.int32(-5), .int32(2)]), .int32(-3))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.scale_int64").call([.int64(1 << 40), .double(0.5)]), .int64(1 << 39))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.mix").call([.float(0.25), .double(1.5), .int32(-2), .int64(10)]), .float(9.75))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.echo_length").call([.string("hello there")]), .string("long"))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.tensor_sum").call([.tensor(values: [1, 2, 3.5, -1], shape: [2, 2])]), .double(5.5))
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.plugin.pointer_is_null").call([.pointer(nil)]), .int64(1))
        // A component id of the plugin works as the PLUGIN part too.
        XCTAssertEqual(try registry.extensionFunction(named: "fixture.head.add_int32").call([.int32(1), .int32(1)]), .int32(2))
    }

    func testErrorsReportedThroughTheSinkBecomeOneLineErrors() throws {
        let registry = try fixture()
        XCTAssertThrowsError(try registry.extensionFunction(named: "fixture.plugin.always_fails").call([])) { error in
            assertOneLine(error, contains: ["libfixture.so", "fixture.plugin.always_fails failed", "did what it says"])
        }
        XCTAssertThrowsError(try registry.extensionFunction(named: "fixture.plugin.tensor_sum").call([.indexTensor(values: [1], shape: [1])])) { error in
            assertOneLine(error, contains: ["needs an F32 tensor"])
        }
    }

    func testArgumentMismatchesAreRefusedBeforeTheCall() throws {
        let registry = try fixture()
        let add = try registry.extensionFunction(named: "fixture.plugin.add_int32")
        XCTAssertThrowsError(try add.call([.int32(1)])) { assertOneLine($0, contains: ["fixture.plugin.add_int32 (i(ii)) takes 2 argument(s), got 1"]) }
        XCTAssertThrowsError(try add.call([.int32(1), .string("x")])) { assertOneLine($0, contains: ["argument 2 must be a 32-bit integer (i)"]) }
        XCTAssertThrowsError(try registry.extensionFunction(named: "fixture.plugin.nothing")) { error in
            assertOneLine(error, contains: ["has no extension function \"nothing\"", "add_int32"])
        }
        XCTAssertThrowsError(try registry.extensionFunction(named: "noplugin")) { assertOneLine($0, contains: ["is not PLUGIN.FUNCTION"]) }
    }

    func testCommandLineArgumentsFollowTheSignature() throws {
        let registry = try fixture()
        let mix = try registry.extensionFunction(named: "fixture.plugin.mix")
        XCTAssertEqual(try mix.call(mix.arguments(fromCommandLine: ["0.5", "2", "3", "-4"])), .float(1.5))
        XCTAssertThrowsError(try mix.arguments(fromCommandLine: ["0.5", "2", "three", "4"])) { error in
            assertOneLine(error, contains: ["argument 3 \"three\" is not a 32-bit integer (i)"])
        }
        XCTAssertThrowsError(try mix.arguments(fromCommandLine: ["1"])) { assertOneLine($0, contains: ["takes 4 argument(s) [f d i l], got 1"]) }
        let sum = try registry.extensionFunction(named: "fixture.plugin.tensor_sum")
        XCTAssertEqual(try sum.call(sum.arguments(fromCommandLine: ["[[1, 2], [3, 4.5]]"])), .double(10.5))
        XCTAssertThrowsError(try sum.arguments(fromCommandLine: ["[[1, 2], [3]]"])) { assertOneLine($0, contains: ["must be a JSON array of numbers"]) }
        let pointer = try registry.extensionFunction(named: "fixture.plugin.pointer_is_null")
        XCTAssertThrowsError(try pointer.arguments(fromCommandLine: ["0"])) { assertOneLine($0, contains: ["takes a pointer", "only a run config"]) }
    }

    func testMetricOverHeadOutputsAndEncodedTargets() throws {
        let head = try HeadInstance(component: allHeads.component(id: "polyhead.classification"), name: "topics",
                                    configJSON: #"{"labels": ["a", "b", "c"]}"#, inputWidth: 2)
        let targets = try HeadTargets.concatenating(["a", "c", "c", "b"].map { try head.encodeTarget(label: .string($0)) })
        let logits: [Float] = [3, 1, 0, 0, 1, 4, 0, 2, 1, 1, 0, 5]
        let accuracy = try allHeads.extensionFunction(named: "polyhead.classification.accuracy")
        XCTAssertTrue(accuracy.isMetric)
        XCTAssertEqual(try accuracy.metric(outputs: logits, width: 3, targets: targets), 0.5)
        XCTAssertThrowsError(try accuracy.metric(outputs: logits, width: 4, targets: targets)) { assertOneLine($0, contains: ["do not match 4 target rows"]) }
        let huber = try allHeads.extensionFunction(named: "polyhead.regression.huber")
        XCTAssertThrowsError(try huber.metric(outputs: logits, width: 3, targets: targets)) { assertOneLine($0, contains: ["a metric must be d(tt) or d(tte)"]) }
    }

    func testHeadMetricsMatchHandComputedValues() throws {
        // 4 rows, 3 classes: predictions 0, 2, 1, 2; targets 0, 2, 2, 1.
        let logits: [Float] = [3, 1, 0, 0, 1, 4, 0, 2, 1, 1, 0, 5]
        let targets: [Int64] = [0, 2, 2, 1]
        let accuracy = try allHeads.extensionFunction(named: "polyhead.classification.accuracy")
        XCTAssertEqual(try accuracy.call([.tensor(values: logits, shape: [4, 3]), .indexTensor(values: targets, shape: [4, 1])]), .double(0.5))
        // F1: class 0: 1, class 1: 0 (1 predicted, 1 actual, none right), class 2: 2*1/(2+2) = 0.5.
        let macroF1 = try allHeads.extensionFunction(named: "polyhead.classification.macro_f1")
        guard case .double(let f1) = try macroF1.call([.tensor(values: logits, shape: [4, 3]), .indexTensor(values: targets, shape: [4])]) else {
            return XCTFail("macro_f1 returns a double")
        }
        XCTAssertEqual(f1, 0.5, accuracy: 1e-12)
        let tokenAccuracy = try allHeads.extensionFunction(named: "polyhead.token_classification.token_accuracy")
        XCTAssertEqual(try tokenAccuracy.call([.tensor(values: logits, shape: [4, 3]), .indexTensor(values: [0, -1, -1, 2], shape: [4])]), .double(1))
        XCTAssertThrowsError(try accuracy.call([.tensor(values: logits, shape: [4, 3]), .indexTensor(values: [0, 1], shape: [2])])) { error in
            assertOneLine(error, contains: ["libClassificationHead.so", "targets must be [4] or [4, 1]"])
        }
        let huber = try allHeads.extensionFunction(named: "polyhead.regression.huber")
        XCTAssertEqual(try huber.call(huber.arguments(fromCommandLine: ["2.5", "1", "1"])), .double(1.0))
        XCTAssertEqual(try huber.call(huber.arguments(fromCommandLine: ["1.5", "1", "1"])), .double(0.125))
        let pearson = try allHeads.extensionFunction(named: "polyhead.regression.pearson")
        guard case .double(let correlation) = try pearson.call(pearson.arguments(fromCommandLine: ["[1, 2, 3]", "[2, 4, 7]"])) else {
            return XCTFail("pearson returns a double")
        }
        XCTAssertEqual(correlation, 0.99339926, accuracy: 1e-6)
        let rank = try allHeads.extensionFunction(named: "example.ordinal-plugin.rank")
        XCTAssertEqual(try rank.call(rank.arguments(fromCommandLine: ["[2.1, 0.3, -1.5]"])), .int64(2))
        let rankError = try allHeads.extensionFunction(named: "example.ordinal.mean_absolute_rank_error")
        XCTAssertEqual(try rankError.call([.tensor(values: [1, 1, -1, -1, 1, -1], shape: [3, 2]), .indexTensor(values: [2, 2, 0], shape: [3])]), .double(1))
    }
}
