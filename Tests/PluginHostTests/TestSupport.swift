import Foundation
import XCTest
@testable import PluginHost

/// Paths of the repository, found from this file.
enum Repository {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let header = root.appendingPathComponent("Sources/CPolyhead/include").path
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/plugins")
    static let cHeadExample = root.appendingPathComponent("examples/c-head")

    /// The directory holding the Swift-built plugins: next to the test binary.
    static var builtPlugins: String {
        PluginSearchPath.packagedDirectories().first ?? root.appendingPathComponent(".build/debug").path
    }

    static func builtPlugin(_ name: String) -> String { (builtPlugins as NSString).appendingPathComponent("lib\(name).so") }
}

enum FixtureBuildError: Error, CustomStringConvertible {
    case compilerFailed(String)
    var description: String { if case .compilerFailed(let text) = self { return text }; return "" }
}

/// Compiles C fixtures into shared libraries with `cc`, once per distinct command, into one
/// temporary directory per test run.
enum FixtureCompiler {
    nonisolated(unsafe) private static var cache: [String: String] = [:]
    private static let lock = NSLock()
    static let directory: String = {
        let path = NSTemporaryDirectory() + "polyhead-plugin-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // Loaded libraries stay mapped after their files are removed, so cleaning up at exit is safe.
        atexit { try? FileManager.default.removeItem(atPath: FixtureCompiler.directory) }
        return path
    }()

    /// - Parameters:
    ///   - source: a path to the C file.
    ///   - output: file name of the library (it goes into `subdirectory` of the run's directory).
    ///   - defines: -D flags.
    static func build(source: String, output: String, defines: [String] = [], subdirectory: String = "") throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let folder = (directory as NSString).appendingPathComponent(subdirectory)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = (folder as NSString).appendingPathComponent(output)
        if cache[path] != nil { return path }
        let arguments = ["-shared", "-fPIC", "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden",
                         "-I", Repository.header] + defines.map { "-D\($0)" } + [source, "-o", path, "-lm"]
        try run("/usr/bin/env", ["cc"] + arguments)
        cache[path] = path
        return path
    }

    static func fixture(_ name: String, output: String, defines: [String] = [], subdirectory: String = "") throws -> String {
        try build(source: Repository.fixtures.appendingPathComponent(name).path, output: output, defines: defines, subdirectory: subdirectory)
    }

    static func run(_ executable: String, _ arguments: [String], directory: String? = nil) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw FixtureBuildError.compilerFailed("\(arguments.joined(separator: " ")) failed: \(String(decoding: output, as: UTF8.self))")
        }
    }
}

/// A deterministic source of test data (not the host's stream, so tests do not depend on it).
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9e37_79b9_7f4a_7c15 }
    mutating func next() -> UInt64 {
        state = state &+ 0x9e37_79b9_7f4a_7c15
        var value = state
        value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
        value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
        return value ^ (value >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }
    mutating func normal() -> Float {
        let first = max(Double(uniform()), 1e-7), second = Double(uniform())
        return Float((-2 * log(first)).squareRoot() * cos(2 * .pi * second))
    }
    mutating func normals(_ count: Int) -> [Float] { (0..<count).map { _ in normal() } }
}

func assertOneLine(_ error: Error, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    let text = "\(error)"
    XCTAssertFalse(text.contains("\n"), "error spans several lines: \(text)", file: file, line: line)
    for fragment in fragments {
        XCTAssertTrue(text.contains(fragment), "error \"\(text)\" does not mention \"\(fragment)\"", file: file, line: line)
    }
}

/// Loads the three Swift heads from the build directory into a fresh registry.
func loadBuiltHeads() throws -> PluginRegistry {
    let registry = PluginRegistry()
    for name in ["ClassificationHead", "RegressionHead", "TokenClassificationHead"] {
        try registry.load(file: Repository.builtPlugin(name))
    }
    return registry
}
