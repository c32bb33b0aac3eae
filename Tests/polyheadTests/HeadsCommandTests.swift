import Foundation
import XCTest

/// `polyhead heads export | import` and `polyhead predict` on the imported head.
final class HeadsCommandTests: XCTestCase {
    func testExportImportPredictsTheSame() throws {
        let cli = try PolyheadProcess()
        try cli.train()
        let home = cli.path("run/checkpoints/final")

        let export = try cli.run(["heads", "export", home, "tags", cli.path("tags.head")])
        XCTAssertEqual(export.status, 0, export.errors)
        XCTAssertTrue(export.output.contains("exported head tags (polyhead.token_classification"), export.output)
        let missing = try cli.run(["heads", "export", home, "colour", cli.path("colour.head")])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.errors.contains("no head for task 'colour' (it has: animal, length, tags)"), missing.errors)

        // A plain Hugging Face directory with the same encoder.
        let plain = cli.path("plain")
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: true)
        for name in ["config.json", "model.safetensors", "vocab.txt"] {
            try FileManager.default.copyItem(atPath: "\(home)/encoder/\(name)", toPath: "\(plain)/\(name)")
        }
        let imported = try cli.run(["heads", "import", cli.path("tags.head"), plain])
        XCTAssertEqual(imported.status, 0, imported.errors)
        XCTAssertTrue(imported.output.contains("installed head tags"), imported.output)

        let texts = ["the zebra sat on my cats .", "a red kite near the old house", "dogs"]
        try Data(texts.map { #"{"text": "\#($0)"}"# }.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: cli.path("texts.jsonl")))
        let there = try cli.run(["predict", "--model", plain, "--input", cli.path("texts.jsonl")])
        let here = try cli.run(["predict", "--model", home, "--task", "tags", "--input", cli.path("texts.jsonl")])
        XCTAssertEqual(there.status, 0, there.errors)
        XCTAssertEqual(there.output, here.output, "the same bytes from the imported head")
        XCTAssertEqual(there.output.split(separator: "\n").count, 3)
        XCTAssertTrue(there.output.hasPrefix(#"{"text":"the zebra sat on my cats .","tags":{"labels":["#), there.output)

        // Again: refused, unless replaced or renamed.
        let again = try cli.run(["heads", "import", cli.path("tags.head"), plain])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.errors.contains("a head for task 'tags' already exists") && again.errors.contains("--replace"), again.errors)
        XCTAssertEqual(try cli.run(["heads", "import", cli.path("tags.head"), plain, "--replace"]).status, 0)
        let renamed = try cli.run(["heads", "import", cli.path("tags.head"), plain, "--as", "tags2"])
        XCTAssertEqual(renamed.status, 0, renamed.errors)
        let both = try cli.run(["predict", "--model", plain, "--task", "tags", "--task", "tags2", "--text", "the cat"])
        XCTAssertEqual(both.status, 0, both.errors)
        XCTAssertTrue(both.output.contains(#""tags":{"labels":["#) && both.output.contains(#""tags2":{"labels":["#), both.output)
    }

    func testImportRefusals() throws {
        let cli = try PolyheadProcess()
        try cli.train()
        try cli.train("other", seed: 6)
        XCTAssertEqual(try cli.run(["heads", "export", cli.path("run/checkpoints/final"), "animal", cli.path("animal.head")]).status, 0)

        // Another encoder: refused with both checksums, accepted when allowed.
        let other = cli.path("other/checkpoints/final")
        let refused = try cli.run(["heads", "import", cli.path("animal.head"), other])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.errors.contains("encoder SHA-256") && refused.errors.contains("--allow-different-encoder"), refused.errors)
        let allowed = try cli.run(["heads", "import", cli.path("animal.head"), other, "--as", "animal-a", "--allow-different-encoder"])
        XCTAssertEqual(allowed.status, 0, allowed.errors)
        XCTAssertEqual(try cli.run(["eval", "--model", other, "--task", "animal"]).status, 0, "the checkpoint still verifies")

        // Another hidden size: always refused, naming both sizes.
        try FileManager.default.copyItem(at: PolyheadProcess.repository.appendingPathComponent("Tests/Fixtures/checkpoint/python-v1/final"),
                                         to: URL(fileURLWithPath: cli.path("small")))
        let small = try cli.run(["heads", "import", cli.path("animal.head"), cli.path("small"), "--allow-different-encoder"])
        XCTAssertNotEqual(small.status, 0)
        XCTAssertTrue(small.errors.contains("hidden size 32") && small.errors.contains("hidden size 8"), small.errors)

        // Not a bundle at all.
        let notBundle = try cli.run(["heads", "import", cli.path("run/run.yaml"), other])
        XCTAssertNotEqual(notBundle.status, 0)
        XCTAssertTrue(notBundle.errors.contains("not a Polyhead head bundle"), notBundle.errors)
    }
}
