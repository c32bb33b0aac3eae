import Foundation

/// Line charts as a standalone SVG file: panels stacked vertically, each with axes, ticks,
/// grid lines, a legend and one polyline per series. No dependencies; any browser opens it.
///
/// ```swift
/// let plot = SVGPlot.trainingCurves(from: try MetricsLog.read(metricsURL))
/// try plot.write(to: out.appendingPathComponent("curves.svg"))
/// ```
///
/// Structure, for tools and tests: each panel is `<g class="panel">`, each series
/// `<g class="series" data-name="...">` holding one `<polyline>` per run of finite values
/// (a NaN or infinity breaks the line) or a `<circle>` for an isolated point.
public struct SVGPlot: Sendable {
    /// The plot's name in the output directory.
    public static let fileName = "curves.svg"

    public struct Series: Sendable, Equatable {
        public var name: String
        /// (x, y) points; drawn in x order.
        public var points: [(x: Double, y: Double)]

        public init(name: String, points: [(x: Double, y: Double)]) {
            self.name = name
            self.points = points
        }

        public static func == (left: Series, right: Series) -> Bool {
            left.name == right.name && left.points.elementsEqual(right.points) { $0.x == $1.x && $0.y == $1.y }
        }
    }

    public struct Panel: Sendable, Equatable {
        public var title: String
        public var xLabel: String
        public var yLabel: String
        public var series: [Series]

        public init(title: String, xLabel: String = "step", yLabel: String, series: [Series]) {
            self.title = title
            self.xLabel = xLabel
            self.yLabel = yLabel
            self.series = series
        }
    }

    public var title: String
    public var panels: [Panel]
    public var width: Double = 960
    public var panelHeight: Double = 340

    public init(title: String, panels: [Panel]) {
        self.title = title
        self.panels = panels
    }

    /// Two panels from a metrics log: training loss per task (`.train` lines, metric
    /// "loss"), and every dev metric per task (`.eval` lines, "task / metric"; eval losses
    /// included, so a panel shows what was logged).
    public static func trainingCurves(from records: [MetricsRecord], title: String = "Training curves") -> SVGPlot {
        func series(kind: MetricsKind, include: (String) -> Bool, name: (String, String) -> String) -> [Series] {
            var points: [String: [(x: Double, y: Double)]] = [:]
            for record in records where record.kind == kind {
                for (task, metrics) in record.tasks {
                    for (metric, value) in metrics where include(metric) {
                        points[name(task, metric), default: []].append((Double(record.step), value))
                    }
                }
            }
            return points.keys.sorted().map { Series(name: $0, points: points[$0] ?? []) }
        }
        let loss = series(kind: .train, include: { $0 == "loss" }, name: { task, _ in task })
        let dev = series(kind: .eval, include: { _ in true }, name: { task, metric in "\(task) / \(metric)" })
        return SVGPlot(title: title, panels: [
            Panel(title: "Training loss per task", yLabel: "loss", series: loss),
            Panel(title: "Dev metrics per task", yLabel: "value", series: dev),
        ])
    }

    /// Writes the SVG atomically.
    /// - Throws: `CheckpointError.cannotWrite` naming the file.
    public func write(to url: URL) throws {
        try DurableFiles.replace(Data(svg().utf8), at: url)
    }

    // Layout, in SVG user units.
    private static let margin = (left: 72.0, right: 250.0, top: 40.0, bottom: 48.0)
    private static let titleHeight = 36.0
    private static let palette = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]

    /// The SVG document text.
    public func svg() -> String {
        let height = Self.titleHeight + Double(max(panels.count, 1)) * panelHeight
        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Self.number(width))" height="\(Self.number(height))" \
        viewBox="0 0 \(Self.number(width)) \(Self.number(height))" font-family="sans-serif" font-size="12">
        <rect x="0" y="0" width="\(Self.number(width))" height="\(Self.number(height))" fill="white"/>
        <text class="title" x="\(Self.number(width / 2))" y="24" text-anchor="middle" font-size="16">\(Self.escaped(title))</text>

        """
        for (index, panel) in panels.enumerated() {
            out += drawPanel(panel, top: Self.titleHeight + Double(index) * panelHeight)
        }
        out += "</svg>\n"
        return out
    }

    private func drawPanel(_ panel: Panel, top: Double) -> String {
        let margin = Self.margin
        let plotLeft = margin.left
        let plotRight = width - margin.right
        let plotTop = top + margin.top
        let plotBottom = top + panelHeight - margin.bottom
        var out = "<g class=\"panel\" data-title=\"\(Self.escaped(panel.title))\">\n"
        out += "<text class=\"panel-title\" x=\"\(Self.number((plotLeft + plotRight) / 2))\" y=\"\(Self.number(top + 24))\" text-anchor=\"middle\" font-size=\"14\">\(Self.escaped(panel.title))</text>\n"

        let finite = panel.series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard !finite.isEmpty else {
            out += "<rect x=\"\(Self.number(plotLeft))\" y=\"\(Self.number(plotTop))\" width=\"\(Self.number(plotRight - plotLeft))\" height=\"\(Self.number(plotBottom - plotTop))\" fill=\"none\" stroke=\"#999\"/>\n"
            out += "<text x=\"\(Self.number((plotLeft + plotRight) / 2))\" y=\"\(Self.number((plotTop + plotBottom) / 2))\" text-anchor=\"middle\" fill=\"#666\">no data logged</text>\n"
            return out + "</g>\n"
        }
        let xTicks = Self.ticks(from: finite.map(\.x).min() ?? 0, to: finite.map(\.x).max() ?? 1)
        let yTicks = Self.ticks(from: finite.map(\.y).min() ?? 0, to: finite.map(\.y).max() ?? 1)
        let xRange = (xTicks.first ?? 0, xTicks.last ?? 1)
        let yRange = (yTicks.first ?? 0, yTicks.last ?? 1)
        func screenX(_ x: Double) -> Double { plotLeft + (x - xRange.0) / (xRange.1 - xRange.0) * (plotRight - plotLeft) }
        func screenY(_ y: Double) -> Double { plotBottom - (y - yRange.0) / (yRange.1 - yRange.0) * (plotBottom - plotTop) }

        // Axes, grid and tick labels.
        out += "<g class=\"axes\" stroke=\"#333\">\n"
        for tick in xTicks {
            let x = Self.number(screenX(tick))
            out += "<line x1=\"\(x)\" y1=\"\(Self.number(plotTop))\" x2=\"\(x)\" y2=\"\(Self.number(plotBottom))\" stroke=\"#e5e5e5\"/>\n"
            out += "<line x1=\"\(x)\" y1=\"\(Self.number(plotBottom))\" x2=\"\(x)\" y2=\"\(Self.number(plotBottom + 5))\"/>\n"
            out += "<text class=\"tick\" x=\"\(x)\" y=\"\(Self.number(plotBottom + 18))\" text-anchor=\"middle\" stroke=\"none\">\(Self.tickLabel(tick, ticks: xTicks))</text>\n"
        }
        for tick in yTicks {
            let y = Self.number(screenY(tick))
            out += "<line x1=\"\(Self.number(plotLeft))\" y1=\"\(y)\" x2=\"\(Self.number(plotRight))\" y2=\"\(y)\" stroke=\"#e5e5e5\"/>\n"
            out += "<line x1=\"\(Self.number(plotLeft - 5))\" y1=\"\(y)\" x2=\"\(Self.number(plotLeft))\" y2=\"\(y)\"/>\n"
            out += "<text class=\"tick\" x=\"\(Self.number(plotLeft - 8))\" y=\"\(Self.number(screenY(tick) + 4))\" text-anchor=\"end\" stroke=\"none\">\(Self.tickLabel(tick, ticks: yTicks))</text>\n"
        }
        out += "<line x1=\"\(Self.number(plotLeft))\" y1=\"\(Self.number(plotBottom))\" x2=\"\(Self.number(plotRight))\" y2=\"\(Self.number(plotBottom))\"/>\n"
        out += "<line x1=\"\(Self.number(plotLeft))\" y1=\"\(Self.number(plotTop))\" x2=\"\(Self.number(plotLeft))\" y2=\"\(Self.number(plotBottom))\"/>\n"
        out += "<text class=\"axis-label\" x=\"\(Self.number((plotLeft + plotRight) / 2))\" y=\"\(Self.number(plotBottom + 38))\" text-anchor=\"middle\" stroke=\"none\">\(Self.escaped(panel.xLabel))</text>\n"
        let yLabelY = Self.number((plotTop + plotBottom) / 2)
        out += "<text class=\"axis-label\" x=\"16\" y=\"\(yLabelY)\" text-anchor=\"middle\" stroke=\"none\" transform=\"rotate(-90 16 \(yLabelY))\">\(Self.escaped(panel.yLabel))</text>\n"
        out += "</g>\n"

        // Series and legend.
        var legend = "<g class=\"legend\">\n"
        for (index, series) in panel.series.enumerated() {
            let color = Self.palette[index % Self.palette.count]
            // Past ten series the colours repeat, so the dash pattern tells them apart.
            let dash = index >= Self.palette.count ? " stroke-dasharray=\"6 3\"" : ""
            out += "<g class=\"series\" data-name=\"\(Self.escaped(series.name))\" stroke=\"\(color)\" fill=\"none\" stroke-width=\"1.8\"\(dash)>\n"
            for run in Self.finiteRuns(series.points.sorted { $0.x < $1.x }) {
                if run.count == 1, let point = run.first {
                    out += "<circle cx=\"\(Self.number(screenX(point.x)))\" cy=\"\(Self.number(screenY(point.y)))\" r=\"2.5\" fill=\"\(color)\"/>\n"
                } else {
                    let coordinates = run.map { "\(Self.number(screenX($0.x))),\(Self.number(screenY($0.y)))" }.joined(separator: " ")
                    out += "<polyline points=\"\(coordinates)\"/>\n"
                }
            }
            out += "</g>\n"
            let legendY = plotTop + 8 + Double(index) * 18
            let legendX = plotRight + 16
            legend += "<line x1=\"\(Self.number(legendX))\" y1=\"\(Self.number(legendY))\" x2=\"\(Self.number(legendX + 22))\" y2=\"\(Self.number(legendY))\" stroke=\"\(color)\" stroke-width=\"2.5\"\(dash)/>\n"
            legend += "<text x=\"\(Self.number(legendX + 28))\" y=\"\(Self.number(legendY + 4))\">\(Self.escaped(series.name))</text>\n"
        }
        out += legend + "</g>\n"
        return out + "</g>\n"
    }

    /// Splits points into runs of finite values.
    private static func finiteRuns(_ points: [(x: Double, y: Double)]) -> [[(x: Double, y: Double)]] {
        var runs: [[(x: Double, y: Double)]] = []
        var current: [(x: Double, y: Double)] = []
        for point in points {
            if point.x.isFinite && point.y.isFinite {
                current.append(point)
            } else if !current.isEmpty {
                runs.append(current)
                current = []
            }
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }

    /// Round tick values (1, 2 or 5 times a power of ten apart) covering [low, high], about
    /// five of them; the first and last ticks bound the axis.
    static func ticks(from low: Double, to high: Double, target: Int = 5) -> [Double] {
        var low = low
        var high = high
        if high - low < 1e-12 * max(abs(low), abs(high), 1e-300) {
            // A flat series: widen around the value so it sits mid-panel.
            let pad = low == 0 ? 1 : abs(low) * 0.1
            low -= pad
            high += pad
        }
        let rough = (high - low) / Double(target)
        let power = pow(10, floor(log10(rough)))
        let step = [1.0, 2.0, 5.0, 10.0].map { $0 * power }.first { $0 >= rough } ?? 10 * power
        let first = floor(low / step)
        let last = ceil(high / step)
        return stride(from: first, through: last, by: 1).map { $0 * step }
    }

    /// A tick value with as many decimals as the tick spacing needs.
    static func tickLabel(_ value: Double, ticks: [Double]) -> String {
        let spacing = ticks.count > 1 ? abs(ticks[1] - ticks[0]) : 1
        if (spacing >= 1 && abs(value) >= 1e6) || spacing < 1e-4 {
            return String(format: "%.3g", value)
        }
        let decimals = max(0, Int(-floor(log10(spacing) + 1e-9)))
        var text = String(format: "%.\(decimals)f", value)
        if text.hasPrefix("-"), Double(text) == 0 { text.removeFirst() }
        return text
    }

    /// Coordinates with two decimals: plenty at screen resolution, short files.
    private static func number(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e12 else { return "0" }
        let rounded = (value * 100).rounded() / 100
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.2f", rounded)
    }

    private static func escaped(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&apos;"
            // XML 1.0 forbids most control characters, even escaped.
            case _ where character.unicodeScalars.contains { $0.value < 0x20 }: result += " "
            default: result.append(character)
            }
        }
        return result
    }
}
