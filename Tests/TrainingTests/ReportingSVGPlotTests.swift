import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Training

final class ReportingSVGPlotTests: XCTestCase {
    /// What an SVG holds, read back with Foundation's XML parser.
    private final class SVGReader: NSObject, XMLParserDelegate {
        struct Panel {
            var title = ""
            var seriesNames: [String] = []
            var polylinesPerSeries: [Int] = []
            var circles = 0
            var legendTexts: [String] = []
        }
        var rootName = ""
        var viewBox: [Double] = []
        var panels: [Panel] = []
        var coordinates: [(Double, Double)] = []
        private var openGroups: [String] = []
        private var textBuffer: String?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            if rootName.isEmpty {
                rootName = name
                viewBox = (attributes["viewBox"] ?? "").split(separator: " ").compactMap { Double($0) }
            }
            switch name {
            case "g":
                let kind = attributes["class"] ?? ""
                openGroups.append(kind)
                if kind == "panel" { panels.append(Panel(title: attributes["data-title"] ?? "")) }
                if kind == "series" {
                    panels[panels.count - 1].seriesNames.append(attributes["data-name"] ?? "")
                    panels[panels.count - 1].polylinesPerSeries.append(0)
                }
            case "polyline" where openGroups.last == "series":
                let index = panels[panels.count - 1].polylinesPerSeries.count - 1
                panels[panels.count - 1].polylinesPerSeries[index] += 1
                for pair in (attributes["points"] ?? "").split(separator: " ") {
                    let values = pair.split(separator: ",").compactMap { Double($0) }
                    if values.count == 2 { coordinates.append((values[0], values[1])) }
                }
            case "circle" where openGroups.last == "series":
                panels[panels.count - 1].circles += 1
            case "text" where openGroups.last == "legend":
                textBuffer = ""
            default:
                break
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            textBuffer? += string
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "g" { openGroups.removeLast() }
            if name == "text", let text = textBuffer {
                panels[panels.count - 1].legendTexts.append(text)
                textBuffer = nil
            }
        }
    }

    private func read(_ svg: String) throws -> SVGReader {
        let reader = SVGReader()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = reader
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(parser.parserError.map { "\($0)" } ?? "?")")
        return reader
    }

    private func records() -> [MetricsRecord] {
        var records: [MetricsRecord] = []
        for step in stride(from: 10, through: 200, by: 10) {
            let x = Double(step)
            records.append(MetricsRecord(step: step, kind: .train, wallTime: 0, elapsed: 0, tasks: [
                "sentiment": ["loss": 1.2 * exp(-x / 80)],
                "topic <&> \"quoted\"": ["loss": step == 100 ? .nan : 2.5 * exp(-x / 60), "accuracy_running": 0.5],
            ]))
            if step % 50 == 0 {
                records.append(MetricsRecord(step: step, kind: .eval, wallTime: 0, elapsed: 0, tasks: [
                    "sentiment": ["accuracy": 0.5 + x / 1000, "macro_f1": 0.4 + x / 1000],
                    "topic <&> \"quoted\"": ["accuracy": 0.3 + x / 2000, "macro_f1": 0.2 + x / 2000],
                ]))
            }
        }
        records.append(MetricsRecord(step: 200, kind: .note, wallTime: 0, elapsed: 0, message: "done"))
        return records
    }

    func testTrainingCurvesParseWithOneSeriesPerTaskAndMetric() throws {
        let directory = try CheckpointTestKit.scratchDirectory(self)
        let url = directory.appendingPathComponent("curves.svg")
        try SVGPlot.trainingCurves(from: records()).write(to: url)
        let reader = try read(String(contentsOf: url, encoding: .utf8))

        XCTAssertEqual(reader.rootName, "svg")
        XCTAssertEqual(reader.panels.map(\.title), ["Training loss per task", "Dev metrics per task"])
        let loss = reader.panels[0]
        XCTAssertEqual(loss.seriesNames, ["sentiment", "topic <&> \"quoted\""])
        // The NaN at step 100 splits the second task's line in two.
        XCTAssertEqual(loss.polylinesPerSeries, [1, 2])
        XCTAssertEqual(loss.legendTexts, loss.seriesNames)
        let dev = reader.panels[1]
        XCTAssertEqual(dev.seriesNames, ["sentiment / accuracy", "sentiment / macro_f1",
                                         "topic <&> \"quoted\" / accuracy", "topic <&> \"quoted\" / macro_f1"])
        XCTAssertEqual(dev.polylinesPerSeries, [1, 1, 1, 1])
        XCTAssertEqual(dev.legendTexts.count, 4)

        // Every drawn point lies inside the picture.
        XCTAssertEqual(reader.viewBox.count, 4)
        XCTAssertEqual(reader.coordinates.count, 20 + 19 + 4 * 4)
        for (x, y) in reader.coordinates {
            XCTAssertTrue((0...reader.viewBox[2]).contains(x) && (0...reader.viewBox[3]).contains(y), "(\(x), \(y)) outside")
        }
    }

    func testEmptyPanelsFlatSeriesAndSinglePointsStillDraw() throws {
        let plot = SVGPlot(title: "edge cases", panels: [
            .init(title: "nothing", yLabel: "loss", series: []),
            .init(title: "flat", yLabel: "value", series: [
                .init(name: "constant", points: [(0, 3), (10, 3), (20, 3)]),
                .init(name: "single", points: [(5, 3)]),
            ]),
        ])
        let reader = try read(plot.svg())
        XCTAssertEqual(reader.panels.map(\.seriesNames), [[], ["constant", "single"]])
        XCTAssertEqual(reader.panels[1].polylinesPerSeries, [1, 0])
        XCTAssertEqual(reader.panels[1].circles, 1)
    }

    func testTicksAreRoundAndCoverTheData() {
        let ticks = SVGPlot.ticks(from: 0.13, to: 0.87)
        XCTAssertEqual(ticks.first ?? 1, 0, accuracy: 1e-12)
        XCTAssertEqual(ticks.last ?? 0, 1, accuracy: 1e-12)
        XCTAssertEqual(ticks.count, 6)
        XCTAssertEqual(ticks.map { SVGPlot.tickLabel($0, ticks: ticks) }, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"])
        let steps = SVGPlot.ticks(from: 10, to: 2000)
        XCTAssertEqual(steps, [0, 500, 1000, 1500, 2000])
        XCTAssertEqual(steps.map { SVGPlot.tickLabel($0, ticks: steps) }, ["0", "500", "1000", "1500", "2000"])
        let flat = SVGPlot.ticks(from: 3, to: 3)
        XCTAssertLessThan(flat.first ?? 3, 3)
        XCTAssertGreaterThan(flat.last ?? 3, 3)
    }
}
