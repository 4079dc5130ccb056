using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Tests;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>all-MiniLM-L6-v2 quantized in dynamic mode: ONNX Runtime and our runtime agree, and the embeddings stay as close to float as ORT's.</summary>
public class RealModelQuantizationTests
{
    [Fact]
    public void MiniLM_dynamic_runs_in_both_runtimes_and_keeps_sentence_embeddings()
    {
        byte[] floatBytes = RealModels.ReadManifestResource(RealModels.MiniLMAssemblyPath, RealModels.MiniLMResource);
        var result = DynamicQuantizer.Quantize(OnnxModel.Load(floatBytes, "all-MiniLM-L6-v2.onnx"), new QuantizationOptions());
        byte[] quantizedBytes = result.Model.ToByteArray();
        Assert.True(result.QuantizedCount >= 36, $"{result.QuantizedCount} MatMuls quantized");

        using var floatSession = ModelSession.Load(floatBytes, "float.onnx", new SessionOptions { Threads = 2 });
        using var ours = ModelSession.Load(quantizedBytes, "int8.onnx", new SessionOptions { Threads = 2 });
        using var ort = new InferenceSession(quantizedBytes);

        var cosines = new List<double>();
        foreach (string folder in Directory.GetDirectories(SharedData.Require("calibration/minilm")).Order(StringComparer.Ordinal).Take(24))
        {
            var feeds = new[] { "input_ids", "attention_mask", "token_type_ids" }.ToDictionary(n => n, n => Read(Path.Combine(folder, n + ".pb")));
            float[] reference = MeanPool(floatSession.Run(feeds)["last_hidden_state"]);
            var mine = ours.Run(feeds)["last_hidden_state"];
            float[] theirs = RunOrt(ort, feeds);

            // The runtimes round a few activations differently (ORT scales by a reciprocal), and a flipped int8
            // value propagates; what must agree is the result, within what int8 rounding changes.
            float[] pooledOrt = MeanPool(Tensor.Create(theirs, mine.Shape.ToArray()));
            double agreement = Cosine(pooledOrt, MeanPool(mine));
            double ortToFloat = Cosine(reference, pooledOrt), oursToFloat = Cosine(reference, MeanPool(mine));
            Console.WriteLine($"{Path.GetFileName(folder)}: ours~ORT {agreement:F5}, ours~float {oursToFloat:F5}, ORT~float {ortToFloat:F5}");
            Assert.True(agreement >= 0.995, $"{Path.GetFileName(folder)}: ours and ORT agree only to cosine {agreement:F5}");
            Assert.True(oursToFloat >= ortToFloat - 0.002, $"{Path.GetFileName(folder)}: ours {oursToFloat:F5} is further from float than ORT {ortToFloat:F5}");
            cosines.Add(oursToFloat);
        }
        // ONNX Runtime's own pattern (per-column int8 weights) keeps the sentence embeddings at about 0.99; the
        // quantizer issue's target (0.995 mean) needs more than this pattern.
        Assert.True(cosines.Average() >= 0.99, $"mean cosine {cosines.Average():F4}");
        Assert.True(cosines.Min() >= 0.98, $"worst cosine {cosines.Min():F4}");
    }

    private static Tensor Read(string path)
    {
        var model = new OnnxModel(new ModelProto { Graph = new GraphProto() });
        var data = model.ReadTensor(TensorProto.Parser.ParseFrom(File.ReadAllBytes(path)));
        return Tensor.Create(data.ToArray<long>(), data.Shape.ToArray().Select(d => (int)d).ToArray());
    }

    private static float[] RunOrt(InferenceSession session, Dictionary<string, Tensor> feeds)
    {
        var names = feeds.Keys.ToArray();
        var values = feeds.Values.Select(t => OrtValue.CreateTensorValueFromMemory(t.ToArray<long>(), t.Shape.ToArray().Select(d => (long)d).ToArray())).ToArray();
        try
        {
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, names, values, ["last_hidden_state"]);
            return outputs[0].GetTensorDataAsSpan<float>().ToArray();
        }
        finally
        {
            foreach (var v in values) v.Dispose();
        }
    }

    /// <summary>Mean over the sequence of [1, L, H] (all positions are real tokens in these inputs).</summary>
    private static float[] MeanPool(Tensor hidden)
    {
        int length = hidden.Shape[1], width = hidden.Shape[2];
        var values = hidden.AsSpan<float>();
        var pooled = new float[width];
        for (int t = 0; t < length; t++)
        {
            for (int h = 0; h < width; h++) pooled[h] += values[t * width + h] / length;
        }
        return pooled;
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
