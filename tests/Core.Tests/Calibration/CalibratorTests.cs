using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Calibration;
using Quantize.Core.Quantization;
using Quantize.Core.Quantization.Graph;
using Quantize.Kernels.Models.Onnx;
using Quantize.Tests;
using OrtSessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Calibration;

/// <summary>The calibrator's statistics against ONNX Runtime's values of the same intermediate tensors.</summary>
public class CalibratorTests
{
    private static readonly string[] SmallModelValues = ["X", "C", "N", "R", "F", "M", "Y"];

    [Fact]
    public void Statistics_of_every_intermediate_value_match_onnx_runtime()
    {
        var model = SmallModel();
        var random = new Random(21);
        var samples = Enumerable.Range(0, 12).Select(i => new CalibrationSample($"s{i}", new Dictionary<string, Tensor>
        {
            ["X"] = Tensor.Create(Enumerable.Range(0, 3 * 8 * 8).Select(_ => (float)(TensorStatisticsTests.Gaussian(random) * (1 + i % 4))).ToArray(), 1, 3, 8, 8),
        })).ToList();
        var expected = OrtValues(model, SmallModelValues.Skip(1).ToArray(), samples);
        expected["X"] = samples.SelectMany(s => s.Inputs["X"].ToArray<float>().Select(v => (double)v)).ToList();

        var progress = new List<CalibrationProgress>();
        var options = new QuantizationOptions { Threads = 2 };
        var statistics = Calibrator.Collect(model, SmallModelValues, CalibrationData.FromSamples(samples, count: samples.Count), options, new SyncProgress(progress.Add), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(SmallModelValues, statistics.Keys);
        Assert.Equal(Enumerable.Range(1, 12), progress.Select(p => p.Completed));
        Assert.All(progress, p => Assert.Equal(12, p.Total));
        Assert.Equal("s11", progress[^1].Sample);

        foreach (string name in SmallModelValues)
        {
            var values = expected[name];
            var stats = statistics[name];
            double scale = values.Max(Math.Abs), tolerance = name == "X" ? 0 : 1e-5 * scale;
            Assert.Equal(values.Count, stats.Count);
            Assert.True(Math.Abs(stats.Min - values.Min()) <= tolerance, $"{name}: min {stats.Min} vs ORT {values.Min()}");
            Assert.True(Math.Abs(stats.Max - values.Max()) <= tolerance, $"{name}: max {stats.Max} vs ORT {values.Max()}");
            // Both signs' histograms agree with ORT's values except for values within rounding of a bin edge.
            double width = stats.BinWidth;
            long nearEdges = values.Count(v => Math.Abs(v / width - Math.Round(v / width)) * width <= tolerance + 1e-7 * scale);
            var ortPositive = new long[stats.BinCount];
            var ortNegative = new long[stats.BinCount];
            foreach (double v in values)
            {
                if (v >= 0) ortPositive[(int)Math.Floor(v / width)]++;
                else ortNegative[(int)Math.Floor(-v / width)]++;
            }
            long disagreements = 0;
            for (int k = 0; k < stats.BinCount; k++)
                disagreements += Math.Abs(ortPositive[k] - stats.PositiveCounts[k]) + Math.Abs(ortNegative[k] - stats.NegativeCounts[k]);
            Assert.True(disagreements <= 2 * nearEdges, $"{name}: {disagreements} values binned differently, {nearEdges} near edges");
        }
        var ranges = Calibrator.Calibrate(model, SmallModelValues, CalibrationData.FromSamples(samples), options, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(SmallModelValues.Select(n => RangeSelection.MinMax(statistics[n])), ranges.Values);
        Assert.Equal(0, statistics["R"].Min); // Relu
        Assert.Equal(statistics["R"].Count, statistics["F"].Count);
    }

    [Fact]
    public void Values_that_fusions_would_swallow_still_reach_the_statistics()
    {
        // Asking for N and Y only lets Conv + BatchNormalization fold and MatMul + Add fuse; asking for C and M
        // (inputs of those fusions) keeps them apart. Either way the values are ORT's.
        var model = SmallModel();
        var random = new Random(4);
        var samples = Enumerable.Range(0, 4).Select(i => new CalibrationSample($"s{i}", new Dictionary<string, Tensor>
        {
            ["X"] = Tensor.Create(Enumerable.Range(0, 192).Select(_ => (float)TensorStatisticsTests.Gaussian(random)).ToArray(), 1, 3, 8, 8),
        })).ToList();
        var expected = OrtValues(model, ["C", "N", "M", "Y"], samples);
        foreach (string[] names in new[] { new[] { "N", "Y" }, new[] { "C", "M" }, new[] { "C", "N", "M", "Y" } })
        {
            var statistics = Calibrator.Collect(model, names, CalibrationData.FromSamples(samples), new QuantizationOptions { Threads = 1 }, cancellationToken: TestContext.Current.CancellationToken);
            foreach (string name in names)
            {
                double scale = expected[name].Max(Math.Abs);
                Assert.True(Math.Abs(statistics[name].Min - expected[name].Min()) <= 1e-5 * scale, $"{name} with {string.Join(",", names)}");
                Assert.True(Math.Abs(statistics[name].Max - expected[name].Max()) <= 1e-5 * scale, $"{name} with {string.Join(",", names)}");
                Assert.Equal(expected[name].Count, statistics[name].Count);
            }
        }
    }

    [Fact]
    public void Unknown_names_bad_samples_and_no_samples_get_clear_errors()
    {
        var model = SmallModel();
        var options = new QuantizationOptions { Threads = 1 };
        var good = new CalibrationSample("good", new() { ["X"] = Tensor.Zeros(Kernels.Models.TensorElementType.Float32, 1, 3, 8, 8) });
        var unknown = Assert.Throws<ArgumentException>(() => Calibrator.Collect(model, ["R", "nope"], CalibrationData.FromSamples([good]), options, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("'nope'", unknown.Message);

        var wrongShape = new CalibrationSample("odd", new() { ["X"] = Tensor.Zeros(Kernels.Models.TensorElementType.Float32, 1, 3, 4, 4) });
        var bad = Assert.Throws<InvalidDataException>(() => Calibrator.Collect(model, ["R"], CalibrationData.FromSamples([good, wrongShape], "my samples"), options, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("my samples", bad.Message);
        Assert.Contains("'odd'", bad.Message);
        Assert.Contains("inner dimensions", bad.Message); // X has no declared shape: the MatMul finds the mismatch

        Assert.Contains("no calibration samples", Assert.Throws<InvalidDataException>(() => Calibrator.Collect(model, ["R"], CalibrationData.FromSamples([]), options, cancellationToken: TestContext.Current.CancellationToken)).Message);

        // The sample limit of the options applies.
        var limited = Calibrator.Collect(model, ["X"], CalibrationData.FromSamples([good, good, good]), options with { CalibrationSamples = 2 }, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(2 * 192, limited["X"].Count);
    }

    [Fact]
    public void ResNet18_ranges_are_plausible_match_onnx_runtime_and_do_not_depend_on_threads()
    {
        var model = OnnxModel.Load(RealModels.ResNet18Path);
        string[] names = ResNet18Values(model);
        var data = CalibrationData.FromFolder(SharedData.Require("calibration/resnet18"), model, limit: 4);

        var one = Calibrator.Collect(model, names, data, new QuantizationOptions { Threads = 1 }, cancellationToken: TestContext.Current.CancellationToken);
        var two = Calibrator.Collect(model, names, data, new QuantizationOptions { Threads = 2 }, cancellationToken: TestContext.Current.CancellationToken);
        foreach (string name in names)
        {
            Assert.Equal(one[name].Count, two[name].Count);
            Assert.Equal(one[name].Min, two[name].Min);
            Assert.Equal(one[name].Max, two[name].Max);
            Assert.Equal(one[name].BinWidth, two[name].BinWidth);
            Assert.Equal(one[name].PositiveCounts.ToArray(), two[name].PositiveCounts.ToArray());
            Assert.Equal(one[name].NegativeCounts.ToArray(), two[name].NegativeCounts.ToArray());
        }

        var samples = data.ToList();
        string[] checkedValues = names.Where((_, i) => i % 5 == 0).Append(names[^1]).Distinct().ToArray();
        var ort = OrtValues(model, checkedValues.Where(n => n != "Input247").ToArray(), samples);
        foreach (string name in checkedValues.Where(n => n != "Input247"))
        {
            double scale = ort[name].Max(Math.Abs);
            Assert.True(Math.Abs(one[name].Min - ort[name].Min()) <= 1e-4 * scale, $"{name}: min {one[name].Min} vs ORT {ort[name].Min()}");
            Assert.True(Math.Abs(one[name].Max - ort[name].Max()) <= 1e-4 * scale, $"{name}: max {one[name].Max} vs ORT {ort[name].Max()}");
        }

        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            var options = new QuantizationOptions { CalibrationMethod = method };
            foreach (string name in names)
            {
                var range = RangeSelection.Select(one[name], options);
                var minMax = RangeSelection.MinMax(one[name]);
                Assert.True(float.IsFinite(range.Min) && float.IsFinite(range.Max) && range.Min <= 0 && range.Max > 0, $"{method} {name}: {range}");
                Assert.True(range.Min >= minMax.Min && range.Max <= minMax.Max, $"{method} {name}: {range} outside {minMax}");
                // A clipped range still keeps a good share of the values' spread.
                Assert.True(range.Max >= 0.05 * minMax.Max, $"{method} {name}: {range} vs {minMax}");
                if (name != "Input247") Assert.Equal(0, range.Min); // after Relu, and Relu + Relu sums
            }
            var input = RangeSelection.Select(one["Input247"], options);
            Assert.True(input.Min >= -129 && input.Max <= 158 && input.Min < -50 && input.Max > 50, $"{method} input {input}");
            TestContext.Current.TestOutputHelper?.WriteLine($"{method}: input {input}, {names[5]} {RangeSelection.Select(one[names[5]], options)}, {names[^1]} {RangeSelection.Select(one[names[^1]], options)}");
        }
        Assert.All(names.Skip(1), name => Assert.True(one[name].Max is > 0 and < 1e4, $"{name}: max {one[name].Max}"));
    }

    /// <summary>The input, the Relu outputs and the final pooling: the values a static quantizer would calibrate.</summary>
    internal static string[] ResNet18Values(OnnxModel model) =>
        new[] { "Input247" }
            .Concat(model.Graph.Node.Where(n => n.OpType is "Relu").Select(n => n.Output[0]))
            .Concat(model.Graph.Output.Select(o => o.Name))
            .ToArray();

    /// <summary>
    /// Conv (padded) + BatchNormalization + Relu + Flatten + MatMul + bias Add: a small graph with both fusions of
    /// the runtime (Conv + BatchNormalization folding, MatMul + Add).
    /// </summary>
    private static OnnxModel SmallModel()
    {
        var random = new Random(2);
        float[] Random(int count, double scale, double offset = 0) => Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 * scale - scale + offset)).ToArray();
        var graph = new GraphProto { Name = "small" };
        graph.Input.Add(FloatValue("X"));
        graph.Output.Add(FloatValue("Y"));
        graph.Initializer.Add(OnnxBuild.Floats("Wc", [4, 3, 3, 3], Random(108, 0.5)));
        graph.Initializer.Add(OnnxBuild.Floats("Bc", [4], Random(4, 0.2)));
        graph.Initializer.Add(OnnxBuild.Floats("scale", [4], Random(4, 0.5, 1)));
        graph.Initializer.Add(OnnxBuild.Floats("shift", [4], Random(4, 0.3)));
        graph.Initializer.Add(OnnxBuild.Floats("mean", [4], Random(4, 0.2)));
        graph.Initializer.Add(OnnxBuild.Floats("variance", [4], Random(4, 0.5, 1)));
        graph.Initializer.Add(OnnxBuild.Floats("W", [256, 10], Random(2560, 0.1)));
        graph.Initializer.Add(OnnxBuild.Floats("B", [10], Random(10, 1)));
        var conv = OnnxBuild.Node("Conv", "conv", ["X", "Wc", "Bc"], ["C"]);
        conv.Attribute.Add(new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1, 1, 1, 1 } });
        graph.Node.Add(conv);
        graph.Node.Add(OnnxBuild.Node("BatchNormalization", "bn", ["C", "scale", "shift", "mean", "variance"], ["N"]));
        graph.Node.Add(OnnxBuild.Node("Relu", "relu", ["N"], ["R"]));
        graph.Node.Add(OnnxBuild.Node("Flatten", "flatten", ["R"], ["F"]).With("axis", 1));
        graph.Node.Add(OnnxBuild.Node("MatMul", "matmul", ["F", "W"], ["M"]));
        graph.Node.Add(OnnxBuild.Node("Add", "add", ["M", "B"], ["Y"]));
        var proto = new ModelProto { IrVersion = 8, ProducerName = "test", Graph = graph };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return new OnnxModel(proto, "small.onnx");
    }

    private static ValueInfoProto FloatValue(string name) =>
        new() { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } } };

    /// <summary>ONNX Runtime's values of <paramref name="names"/> over the samples (the model with them as outputs), as float64.</summary>
    internal static Dictionary<string, List<double>> OrtValues(OnnxModel model, string[] names, IEnumerable<CalibrationSample> samples)
    {
        var proto = model.Proto.Clone();
        foreach (string name in names.Where(n => !proto.Graph.Output.Any(o => o.Name == n))) proto.Graph.Output.Add(FloatValue(name));
        using var options = new OrtSessionOptions { IntraOpNumThreads = 1, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
        using var session = new InferenceSession(new OnnxModel(proto, model.Source, model.BaseDirectory).ToByteArray(), options);
        var result = names.ToDictionary(n => n, _ => new List<double>());
        foreach (var sample in samples)
        {
            var (inputName, tensor) = sample.Inputs.Single();
            using var input = OrtValue.CreateTensorValueFromMemory(tensor.ToArray<float>(), tensor.Shape.ToArray().Select(d => (long)d).ToArray());
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, [inputName], [input], names);
            for (int i = 0; i < names.Length; i++)
            {
                foreach (float v in outputs[i].GetTensorDataAsSpan<float>()) result[names[i]].Add(v);
            }
        }
        return result;
    }

    /// <summary>An <see cref="IProgress{T}"/> that calls back at once, on the reporting thread.</summary>
    internal sealed class SyncProgress(Action<CalibrationProgress> report) : IProgress<CalibrationProgress>
    {
        public void Report(CalibrationProgress value) => report(value);
    }
}
