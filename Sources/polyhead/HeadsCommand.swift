import ArgumentParser
import Foundation
import Training

/// `polyhead heads export | import`: one trained head as one file (docs/checkpoint-format.md).
struct HeadsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heads",
        abstract: "Export a trained head as one file, or import one into a model directory.",
        discussion: """
        A head bundle is a safetensors file: the head's weights, and its manifest (plugin, \
        options, labels, the encoder it was trained on) in the metadata. A model directory is \
        a checkpoint (runs/NAME/checkpoints/best) or a plain Hugging Face model directory; \
        heads live in its heads/TASK/.
        """,
        subcommands: [Export.self, Import.self])
}

extension HeadsCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the head of TASK in MODEL_DIR to FILE (a checkpoint's head is verified first).",
            discussion: """
            Refused for a task trained through an adapter or a router (the model directory's \
            adapters/ or routers/ name it): the head alone would predict differently without them.
            """)

        @Argument(help: "A checkpoint or model directory.") var modelDirectory: String
        @Argument(help: "The task whose head to export.") var task: String
        @Argument(help: "The bundle to write (e.g. TASK.head).") var file: String

        func run() throws {
            let manifest = try HeadBundle.export(modelDirectory: URL(fileURLWithPath: modelDirectory), task: task, to: URL(fileURLWithPath: file))
            print("exported head \(manifest.task) (\(manifest.pluginID) \(manifest.pluginVersion), \(manifest.taskType), encoder hidden size \(manifest.encoderHiddenSize)) to \(file)")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install the head in FILE as MODEL_DIR/heads/TASK.",
            discussion: """
            Refused when the model's encoder has another hidden size than the head was trained \
            on (always), when its weights differ from the encoder the head was trained with \
            (unless --allow-different-encoder), and when MODEL_DIR already has a head of that \
            task (unless --replace, or --as gives another name).
            """)

        @Argument(help: "A head bundle written by `polyhead heads export`.") var file: String
        @Argument(help: "A checkpoint or model directory.") var modelDirectory: String
        @Flag(help: "Replace an existing head of the same task.") var replace = false
        @Flag(help: "Accept an encoder whose weights differ from the one the head was trained with.") var allowDifferentEncoder = false
        @Option(name: .customLong("as"), help: ArgumentHelp("Install under this task name.", valueName: "name")) var taskName: String?

        func run() throws {
            let options = HeadBundle.ImportOptions(allowDifferentEncoder: allowDifferentEncoder, replaceExisting: replace, taskName: taskName)
            let manifest = try HeadBundle.import(URL(fileURLWithPath: file), into: URL(fileURLWithPath: modelDirectory), options: options)
            print("installed head \(manifest.task) (\(manifest.pluginID) \(manifest.pluginVersion)) in \(URL(fileURLWithPath: modelDirectory).appendingPathComponent("heads").appendingPathComponent(manifest.task).path)")
        }
    }
}
