import CPolyhead
import Foundation
import XCTest
@testable import PluginHost

final class LoadingTests: XCTestCase {
    func testSwiftHeadsLoadWithTheirComponentsAndToolchain() throws {
        let registry = try loadBuiltHeads()
        XCTAssertEqual(Set(registry.components.map(\.id)),
                       ["polyhead.classification", "polyhead.multi_label_classification", "polyhead.regression", "polyhead.token_classification"])
        for plugin in registry.plugins {
            XCTAssertEqual(plugin.abiMajor, Int(PH_ABI_MAJOR))
            XCTAssertEqual(plugin.swiftToolchain, hostSwiftToolchain, "Swift plugins record the toolchain they were built with")
            XCTAssertTrue(plugin.components.allSatisfy { $0.kind == .taskHead })
        }
        XCTAssertTrue(hostSwiftToolchain.hasPrefix("swift "))
        let classification = try registry.component(id: "polyhead.classification")
        XCTAssertEqual(Set(classification.plugin.extensionFunctions.map(\.name)), ["accuracy", "macro_f1"])
    }

    func testCPluginLoadsAllThreeKindsAndHasNoToolchain() throws {
        let path = try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so")
        let registry = PluginRegistry()
        let plugin = try registry.load(file: path)
        XCTAssertNil(plugin.swiftToolchain)
        XCTAssertEqual(plugin.components.map(\.kind), [.taskHead, .router, .encoderAdapter, .taskHead])
        XCTAssertEqual(plugin.components.first?.version, "1.2.3")
        XCTAssertEqual(plugin.extensionFunctions.count, 7)
    }

    func testLoadingTheSameFileTwiceRunsTheEntryOnceAndRegistersOnce() throws {
        let path = try FixtureCompiler.fixture("fixture_plugin.c", output: "libfixture.so")
        let link = (FixtureCompiler.directory as NSString).appendingPathComponent("libfixture-link.so")
        try? FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        let registry = PluginRegistry()
        let first = try registry.load(file: path)
        let second = try registry.load(file: link)
        XCTAssertTrue(first === second, "one LoadedPlugin per real path")
        XCTAssertEqual(registry.plugins.count, 1)
        XCTAssertTrue(try PluginRegistry().load(file: path) === first, "a second registry gets the same plugin")
    }

    func testSearchPathOrderAndScanSkipsLibrariesThatAreNotPlugins() throws {
        let directory = "scan"
        _ = try FixtureCompiler.fixture("fixture_plugin.c", output: "libscanned.so", defines: ["PLUGIN_ID=\"scan.plugin\"", "HEAD_ID=\"scan.head\""], subdirectory: directory)
        _ = try FixtureCompiler.fixture("no_entry.c", output: "libnot-a-plugin.so", subdirectory: directory)
        let scanned = (FixtureCompiler.directory as NSString).appendingPathComponent(directory)
        let searchPath = PluginSearchPath.resolve(commandLine: ["/nonexistent-polyhead-dir"],
                                                  environment: ["POLYHEAD_PLUGIN_PATH": scanned], includePackaged: true)
        XCTAssertEqual(Array(searchPath.entries.prefix(2)), ["/nonexistent-polyhead-dir", scanned])
        XCTAssertTrue(searchPath.entries.contains(Repository.builtPlugins), "the package's own plugins come last")

        let registry = PluginRegistry()
        registry.load(searchPath: searchPath)
        XCTAssertNoThrow(try registry.component(id: "scan.head"))
        XCTAssertNoThrow(try registry.component(id: "polyhead.regression"))
        // The library without an entry is skipped silently in a directory; the missing
        // directory is reported.
        XCTAssertEqual(registry.refusals.count, 1, "\(registry.refusals)")
        assertOneLine(registry.refusals[0], contains: ["/nonexistent-polyhead-dir", "does not exist"])
    }

    func testMissingComponentNamesWhatIsLoadedAndRefused() throws {
        let registry = PluginRegistry()
        let bad = try FixtureCompiler.fixture("fixture_plugin.c", output: "libmajor2-listed.so", defines: ["ANSWER_MAJOR=2"], subdirectory: "listed")
        registry.load(searchPath: PluginSearchPath(entries: [bad, Repository.builtPlugin("RegressionHead")]))
        XCTAssertThrowsError(try registry.component(id: "polyhead.classification")) { error in
            assertOneLine(error, contains: ["polyhead.classification", "polyhead.regression", "libmajor2-listed.so", "--plugin-path"])
        }
    }
}
