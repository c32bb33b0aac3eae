import Foundation

/// Locates the committed fixtures of the config, data and metrics tests.
enum DataSideFixtures {
    /// Tests/Fixtures, found from this file's path so tests run from any directory.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    /// The repository root (for docs/).
    static let repository = root.deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ area: String, _ name: String) -> String {
        root.appendingPathComponent(area).appendingPathComponent(name).path
    }

    /// A fresh temporary directory, removed by the caller's teardown.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("polyhead-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
