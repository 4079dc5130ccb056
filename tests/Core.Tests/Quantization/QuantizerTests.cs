using Google.Protobuf;
using Quantize.Core.Evaluation;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using static Quantize.Core.Tests.Quantization.TestGraphs;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>The quantizer's entry: provenance, determinism, files, accuracy measurement and the accuracy target.</summary>
public class QuantizerTests
{
    [Fact]
    public void Output_carries_provenance_and_is_byte_identical_across_runs_and_thread_counts()
    {
        var model = TwoLayerModel(new Random(11));
        var source = new OnnxModel(model);
        var samples = Samples(new Random(12), 6);
        var one = Quantizer.Quantize(source, new QuantizationOptions { Threads = 1 }, samples);
        var two = Quantizer.Quantize(source, new QuantizationOptions { Threads = 2 }, samples);
        var again = Quantizer.Quantize(source, new QuantizationOptions { Threads = 2 }, samples);
        Assert.Equal(one.Model.ToByteArray(), two.Model.ToByteArray());
        Assert.Equal(two.Model.ToByteArray(), again.Model.ToByteArray());

        var metadata = one.Model.Proto.MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.StartsWith("Quantize.Build ", metadata[Quantizer.ToolKey]);
        Assert.Equal("dynamic", metadata[Quantizer.ModeKey]);
        Assert.Contains("\"perChannel\":true", metadata[Quantizer.OptionsKey]);
        string expectedHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(model.ToByteArray()));
        Assert.Equal(expectedHash, metadata[Quantizer.SourceKey]);
        Assert.Equal(expectedHash, one.SourceSha256);
    }

    [Fact]
    public void QuantizeFile_writes_the_output_leaves_the_source_alone_and_refuses_to_overwrite_it()
    {
        string folder = Directory.CreateTempSubdirectory("quantizer-file").FullName;
        try
        {
            string sourcePath = Path.Combine(folder, "model.onnx"), outputPath = Path.Combine(folder, "out", "model.int8.onnx");
            File.WriteAllBytes(sourcePath, TwoLayerModel(new Random(2)).ToByteArray());
            byte[] before = File.ReadAllBytes(sourcePath);
            Directory.CreateDirectory(Path.GetDirectoryName(outputPath)!);

            var summary = Quantizer.QuantizeFile(sourcePath, outputPath, new QuantizationOptions { Mode = QuantizationMode.Weights });
            var result = summary.Result;
            Assert.Equal(before.Length, summary.SourceBytes);
            Assert.Equal(new FileInfo(outputPath).Length, summary.OutputBytes);
            Assert.Equal(before, File.ReadAllBytes(sourcePath));
            Assert.Equal(2, result.QuantizedCount);
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(before)), result.SourceSha256);
            var written = OnnxModel.Load(outputPath);
            Assert.Contains(written.Graph.Node, n => n.OpType == "DequantizeLinear");
            Assert.Equal([outputPath], Directory.GetFiles(Path.GetDirectoryName(outputPath)!)); // no temporary file left

            var error = Assert.Throws<ArgumentException>(() => Quantizer.QuantizeFile(sourcePath, sourcePath, new QuantizationOptions()));
            Assert.Contains("overwrite the source", error.Message);
            Assert.Equal(before, File.ReadAllBytes(sourcePath));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Accuracy_metrics_equal_a_direct_float64_computation()
    {
        var random = new Random(21);
        var model = TwoLayerModel(random);
        var samples = Samples(random, 5);
        var result = Quantizer.Quantize(new OnnxModel(model), new QuantizationOptions(), samples);
        var report = result.Accuracy!;
        Assert.Equal(5, report.Samples);
        Assert.False(report.GeneratedInputs);
        var output = Assert.Single(report.Outputs);

        // The same numbers from ONNX Runtime's outputs of both models, in float64.
        byte[] floatBytes = model.ToByteArray(), quantizedBytes = result.Model.ToByteArray();
        var cosines = new List<double>();
        double signal = 0, noise = 0, maxAbs = 0;
        foreach (var sample in samples())
        {
            float[] x = sample["X"].ToArray<float>();
            float[] reference = RunOrt(floatBytes, ("X", x, [3, 64]));
            float[] quantized = RunOurs(quantizedBytes, ("X", x, [3, 64]));
            cosines.Add(Cosine(reference, quantized));
            for (int i = 0; i < reference.Length; i++)
            {
                double e = (double)reference[i] - quantized[i];
                signal += (double)reference[i] * reference[i];
                noise += e * e;
                maxAbs = Math.Max(maxAbs, Math.Abs(e));
            }
        }
        Assert.Equal(cosines.Average(), output.MeanCosine, 4);
        Assert.Equal(cosines.Min(), output.MinCosine, 4);
        Assert.Equal(10 * Math.Log10(signal / noise), output.Sqnr, 1);
        Assert.Equal(maxAbs, output.MaxAbsError, 3);
        Assert.NotNull(output.Top1Agreement); // [3, 16] looks like a classifier's logits
    }

    [Fact]
    public void An_accuracy_target_keeps_the_most_damaging_layer_float_and_says_which()
    {
        // The second layer reads an activation with one huge channel, so its per-tensor uint8 quantization is coarse;
        // the first layer quantizes well. A target between the two must give up the second layer only.
        var random = new Random(31);
        var source = new OnnxModel(Model(OutlierGraph(random, tail: false)));
        var samples = Samples(random, 4);

        var plain = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0 }, samples);
        double before = plain.Accuracy!.WorstMeanCosine;
        Assert.True(before < 0.9999, $"the outlier should cost accuracy; cosine {before}");

        double withoutBad = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, ExcludeNodes = ["bad"] }, samples).Accuracy!.WorstMeanCosine;
        double withoutGood = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, ExcludeNodes = ["good"] }, samples).Accuracy!.WorstMeanCosine;
        Assert.True(withoutBad > withoutGood && withoutBad > before, $"float 'bad' {withoutBad}, float 'good' {withoutGood}, none {before}");
        var targeted = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, MinimumCosine = withoutBad - 1e-9 }, samples);
        Assert.Equal(["bad"], targeted.KeptFloatForAccuracy);
        Assert.True(targeted.TargetMet);
        Assert.Contains(targeted.Decisions, d => d.Node == "bad" && !d.Quantized && d.Reason.Contains("accuracy target"));
        Assert.Contains(targeted.Decisions, d => d.Node == "good" && d.Quantized);
    }

    [Fact]
    public void Layer_report_ranks_the_outlier_layer_worst_and_leaves_the_model_alone()
    {
        var random = new Random(31);
        var source = new OnnxModel(Model(OutlierGraph(random, tail: true)));
        var samples = Samples(random, 4);

        var plain = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, MinimumSize = 16 }, samples);
        var layered = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, MinimumSize = 16, ReportLayers = true }, samples);
        Assert.Null(plain.Accuracy!.Layers);
        Assert.Equal(plain.Model.ToByteArray(), layered.Model.ToByteArray());
        var layers = layered.Accuracy!.Layers!;
        // Shared intermediate tensors, worst SQNR first: the outlier-scaled product is worse than the first layer's.
        Assert.Contains(layers, l => l.Name == "H");
        Assert.True(layers.ToList().FindIndex(l => l.Name == "B") < layers.ToList().FindIndex(l => l.Name == "H"), string.Join(", ", layers.Select(l => $"{l.Name} {l.Sqnr:F1}")));
        for (int i = 1; i < layers.Count; i++) Assert.True(layers[i - 1].Sqnr <= layers[i].Sqnr);
    }

    [Fact]
    public void Smoothing_with_calibration_samples_recovers_accuracy_lost_to_an_outlier_channel()
    {
        var random = new Random(41);
        var graph = new GraphProto { Name = "outlier" };
        graph.Input.Add(Floats("X", 3, 64));
        graph.Output.Add(Floats("Y", 3, 16));
        var boost = Enumerable.Repeat(1f, 64).ToArray();
        boost[9] = 200;
        graph.Initializer.Add(FloatTensor("boost", [64], boost));
        graph.Initializer.Add(FloatTensor("W", [64, 16], Random(random, 64 * 16)));
        graph.Node.Add(Node("Mul", "outlier", ["X", "boost"], ["G"]));
        graph.Node.Add(Node("MatMul", "mm", ["G", "W"], ["Y"]));
        var source = new OnnxModel(Model(graph));
        var samples = Samples(random, 4);

        // 8-bit weights, so that the activation error smoothing removes is not hidden under 7-bit weights' own.
        var plain = Quantizer.Quantize(source, new QuantizationOptions { Smoothing = 0, ReduceRange = false }, samples);
        var smoothed = Quantizer.Quantize(source, new QuantizationOptions { ReduceRange = false }, samples);
        Assert.Contains(smoothed.Model.Graph.Node, n => n.OpType == "Mul" && n.Name.EndsWith("_Smooth", StringComparison.Ordinal));
        double noise = 1 - plain.Accuracy!.WorstMeanCosine, smoothedNoise = 1 - smoothed.Accuracy!.WorstMeanCosine;
        Assert.True(smoothedNoise < noise / 4, $"smoothing: 1 - cosine {smoothedNoise:E2} vs {noise:E2} without");
        // Still standard ONNX that ONNX Runtime runs, agreeing with ours.
        float[] x = samples().First()["X"].ToArray<float>();
        byte[] bytes = smoothed.Model.ToByteArray();
        Assert.True(Cosine(RunOrt(bytes, ("X", x, [3, 64])), RunOurs(bytes, ("X", x, [3, 64]))) >= 0.9999);
    }

    [Fact]
    public void Without_samples_the_evaluation_uses_generated_inputs_and_says_so()
    {
        var report = AccuracyEvaluator.Compare(new OnnxModel(TwoLayerModel(new Random(1))),
            Quantizer.Quantize(new OnnxModel(TwoLayerModel(new Random(1))), new QuantizationOptions()).Model, null);
        Assert.True(report.GeneratedInputs);
        Assert.Equal(1, report.Samples);
    }

    internal static ModelProto TwoLayerModel(Random random)
    {
        var graph = new GraphProto { Name = "two_layers" };
        graph.Input.Add(Floats("X", 3, 64));
        graph.Output.Add(Floats("Y", 3, 16));
        graph.Initializer.Add(FloatTensor("W1", [64, 64], Random(random, 64 * 64)));
        graph.Initializer.Add(FloatTensor("W2", [64, 16], Random(random, 64 * 16)));
        graph.Node.Add(Node("MatMul", "first", ["X", "W1"], ["H"]));
        graph.Node.Add(Node("Relu", "relu", ["H"], ["R"]));
        graph.Node.Add(Node("MatMul", "second", ["R", "W2"], ["Y"]));
        return Model(graph);
    }

    private static SampleSource Samples(Random random, int count)
    {
        var data = Enumerable.Range(0, count).Select(_ => Random(random, 3 * 64, 2)).ToList();
        return () => data.Select(x => (IReadOnlyDictionary<string, Tensor>)new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, 3, 64) });
    }

    /// <summary>
    /// X -> MatMul 'good' -> H -> Mul by a channel boosted 500x 'outlier' -> G -> MatMul 'bad' -> Y; with <paramref name="tail"/>,
    /// 'bad' writes B and Relu + MatMul 'last' follow. The boosted channel makes 'bad''s per-tensor activation scale coarse.
    /// </summary>
    private static GraphProto OutlierGraph(Random random, bool tail)
    {
        var graph = new GraphProto { Name = "outlier" };
        graph.Input.Add(Floats("X", 3, 64));
        graph.Output.Add(Floats("Y", 3, 16));
        graph.Initializer.Add(FloatTensor("W1", [64, 64], Random(random, 64 * 64)));
        var boost = Enumerable.Repeat(1f, 64).ToArray();
        boost[5] = 500;
        graph.Initializer.Add(FloatTensor("boost", [64], boost));
        graph.Initializer.Add(FloatTensor("W2", [64, 16], Random(random, 64 * 16)));
        graph.Node.Add(Node("MatMul", "good", ["X", "W1"], ["H"]));
        graph.Node.Add(Node("Mul", "outlier", ["H", "boost"], ["G"]));
        graph.Node.Add(Node("MatMul", "bad", ["G", "W2"], [tail ? "B" : "Y"]));
        if (tail)
        {
            graph.Initializer.Add(FloatTensor("W3", [16, 16], Random(random, 16 * 16)));
            graph.Node.Add(Node("Relu", "relu", ["B"], ["R"]));
            graph.Node.Add(Node("MatMul", "last", ["R", "W3"], ["Y"]));
        }
        return graph;
    }
}
