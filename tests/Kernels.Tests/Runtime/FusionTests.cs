using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>Fused plans compute what ONNX Runtime computes for the unfused graph.</summary>
public class FusionTests
{
    [Fact]
    public void MatMul_plus_bias_is_fused_and_matches_onnx_runtime()
    {
        var random = new Random(2);
        int m = 5, k = 70, n = 33;
        float[] w = Enumerable.Range(0, k * n).Select(_ => random.NextSingle() - 0.5f).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        float[] x = Enumerable.Range(0, 2 * m * k).Select(_ => random.NextSingle() - 0.5f).ToArray();
        byte[] model = MatMulAddModel(k, n, w, bias).ToByteArray();

        using var ours = ModelSession.Load(model, "matmul_add.onnx", new SessionOptions { Threads = 1 });
        Assert.Contains(ours.PlannedNodes, label => label.Contains("(MatMulAdd)", StringComparison.Ordinal));
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, 2, m, k) })["Y"].ToArray<float>();

        using var ort = new InferenceSession(model);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [2, m, k]);
        using var runOptions = new RunOptions();
        using var outputs = ort.Run(runOptions, ["X"], [input], ["Y"]);
        float[] expected = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(expected[i])), $"{i}: {mine[i]} vs {expected[i]}");
    }

    private static ModelProto MatMulAddModel(int k, int n, float[] w, float[] bias)
    {
        var graph = new GraphProto { Name = "g" };
        graph.Input.Add(Value("X", 2, -1, k));
        graph.Output.Add(Value("Y", 2, -1, n));
        graph.Initializer.Add(Floats("W", [k, n], w));
        graph.Initializer.Add(Floats("B", [n], bias));
        var mm = new NodeProto { OpType = "MatMul", Name = "mm" };
        mm.Input.AddRange(["X", "W"]);
        mm.Output.Add("XW");
        var add = new NodeProto { OpType = "Add", Name = "add" };
        add.Input.AddRange(["B", "XW"]);
        add.Output.Add("Y");
        graph.Node.AddRange([mm, add]);
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(d < 0 ? new TensorShapeProto.Types.Dimension { DimParam = "rows" } : new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    private static TensorProto Floats(string name, long[] dims, float[] values)
    {
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }
}
