using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using static Quantize.Core.Tests.Quantization.TestGraphs;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// Models as they come: weights in external data files, and If subgraphs that read the main graph's weights. The
/// quantized file must load and run in ONNX Runtime, and the source files must be left exactly as they were.
/// </summary>
public sealed class ModelFormTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("quantize-forms-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData(QuantizationMode.Weights)]
    [InlineData(QuantizationMode.Dynamic)]
    public void Model_with_external_data_is_quantized_into_another_folder_and_the_source_is_untouched(QuantizationMode mode)
    {
        var random = new Random(21);
        var graph = new GraphProto { Name = "external" };
        graph.Input.Add(Floats("X", 4, 64));
        graph.Output.Add(Floats("Y", 4, 48));
        graph.Initializer.Add(FloatTensor("W1", [64, 96], Random(random, 64 * 96, 0.2f)));
        graph.Initializer.Add(FloatTensor("W2", [96, 48], Random(random, 96 * 48, 0.2f)));
        graph.Initializer.Add(FloatTensor("B", [96], Random(random, 96, 0.1f))); // small: stays float, still external
        graph.Node.Add(Node("MatMul", "mm1", ["X", "W1"], ["h"]));
        graph.Node.Add(Node("Add", "bias", ["h", "B"], ["hb"]));
        graph.Node.Add(Node("Relu", "relu", ["hb"], ["r"]));
        graph.Node.Add(Node("MatMul", "mm2", ["r", "W2"], ["Y"]));
        string sourceFolder = Directory.CreateDirectory(Path.Combine(_folder, "source")).FullName;
        string sourcePath = Path.Combine(sourceFolder, "model.onnx");
        new OnnxModel(Model(graph)).Save(sourcePath, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always, SizeThreshold = 0 });
        var before = Directory.GetFiles(sourceFolder).ToDictionary(f => f, f => SHA256.HashData(File.ReadAllBytes(f)));
        Assert.True(before.Count >= 2, "the source has an external data file");

        string outputPath = Path.Combine(_folder, "out", "model.q.onnx");
        var summary = Quantizer.QuantizeFile(sourcePath, outputPath, new QuantizationOptions { Mode = mode, MinimumSize = 1024 });
        Assert.Equal(2, summary.Result.QuantizedCount);

        // The source folder is byte-for-byte what it was; the output stands alone.
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(sourceFolder).Order());
        foreach (var (file, hash) in before) Assert.Equal(hash, SHA256.HashData(File.ReadAllBytes(file)));
        Directory.Delete(sourceFolder, recursive: true);
        var quantized = OnnxModel.Load(outputPath);
        float[] x = Random(random, 4 * 64);
        float[] reference = RunOrt(Model(graph).ToByteArray(), ("X", x, [4, 64]));
        float[] ort = RunOrt(File.ReadAllBytes(outputPath), ("X", x, [4, 64]));
        float[] ours = RunOurs(quantized.ToByteArray(), ("X", x, [4, 64]));
        Assert.True(Cosine(reference, ort) >= 0.999, $"ORT cosine {Cosine(reference, ort):F6}");
        Assert.True(Cosine(reference, ours) >= 0.999, $"ours cosine {Cosine(reference, ours):F6}");
    }

    [Fact]
    public void If_branches_that_read_a_quantized_weight_keep_working()
    {
        var random = new Random(22);
        var w = Random(random, 64 * 32, 0.3f);
        var graph = new GraphProto { Name = "branches" };
        graph.Input.Add(Floats("X", 4, 64));
        graph.Input.Add(Value("cond", 9));
        graph.Output.Add(Floats("Y", 4, 32));
        graph.Output.Add(Floats("Z", 4, 32));
        graph.Initializer.Add(FloatTensor("W", [64, 32], w));
        graph.Node.Add(Node("MatMul", "main_mm", ["X", "W"], ["Y"]));
        // Both branches read W from the outer scope; the else branch also has its own weight.
        var thenBranch = new GraphProto { Name = "then" };
        thenBranch.Node.Add(Node("MatMul", "then_mm", ["X", "W"], ["t"]));
        thenBranch.Output.Add(Floats("t", 4, 32));
        var elseBranch = new GraphProto { Name = "else" };
        elseBranch.Initializer.Add(FloatTensor("W_else", [64, 32], Random(random, 64 * 32, 0.3f)));
        elseBranch.Node.Add(Node("MatMul", "else_mm", ["X", "W_else"], ["e1"]));
        elseBranch.Node.Add(Node("MatMul", "else_outer", ["X", "W"], ["e2"]));
        elseBranch.Node.Add(Node("Add", "else_add", ["e1", "e2"], ["e"]));
        elseBranch.Output.Add(Floats("e", 4, 32));
        var branch = Node("If", "choose", ["cond"], ["Z"]);
        branch.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = thenBranch });
        branch.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = elseBranch });
        graph.Node.Add(branch);
        var model = Model(graph);
        byte[] floatBytes = model.ToByteArray();

        foreach (var mode in new[] { QuantizationMode.Weights, QuantizationMode.Dynamic })
        {
            var result = Quantizer.Quantize(new OnnxModel(model.Clone()), new QuantizationOptions { Mode = mode });
            Assert.Contains(result.Decisions, d => d.Node == "main_mm" && d.Quantized);
            byte[] quantized = result.Model.ToByteArray();
            float[] x = Random(random, 4 * 64);
            foreach (bool condition in new[] { true, false })
            {
                float[] expected = RunIf(floatBytes, x, condition), actual = RunIf(quantized, x, condition);
                // The branches may stay float (then they are exact) or be quantized (then within int8 error).
                Assert.True(Cosine(expected, actual) >= 0.999, $"{mode}, cond={condition}: cosine {Cosine(expected, actual):F6}");
            }
        }
    }

    /// <summary>Runs the branching model in ONNX Runtime; returns Z.</summary>
    private static float[] RunIf(byte[] model, float[] x, bool condition)
    {
        using var session = new InferenceSession(model);
        using var xValue = OrtValue.CreateTensorValueFromMemory(x, [4, 64]);
        using var condValue = OrtValue.CreateTensorValueFromMemory(new[] { condition }, []);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["X", "cond"], [xValue, condValue], ["Z"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
