using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Tensor = Quantize.Kernels.Runtime.Tensor;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using OrtSessionOptions = Microsoft.ML.OnnxRuntime.SessionOptions;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;

namespace Quantize.Core.Tests.Quantization;

/// <summary>The dynamic mode writes ONNX Runtime's pattern: ORT runs it, our runtime runs it, and both agree.</summary>
public class DynamicQuantizerTests
{
    [Fact]
    public void Quantized_matmul_runs_in_onnx_runtime_and_ours_with_the_same_results()
    {
        var random = new Random(7);
        int m = 6, k = 96, n = 40;
        float[] w = Enumerable.Range(0, k * n).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        float[] bias = Enumerable.Range(0, n).Select(_ => random.NextSingle()).ToArray();
        float[] x = Enumerable.Range(0, m * k).Select(_ => random.NextSingle() * 4 - 2).ToArray();
        var source = new OnnxModel(MatMulAddModel(m, k, n, w, bias));

        var result = DynamicQuantizer.Quantize(source, new QuantizationOptions());
        Assert.Equal(1, result.QuantizedCount);
        Assert.Contains(result.Model.Graph.Node, node => node.OpType == "MatMulInteger");
        Assert.DoesNotContain(result.Model.Graph.Initializer, t => t.Name == "W"); // the float weight is gone
        byte[] quantized = result.Model.ToByteArray();

        float[] ort = RunOrt(quantized, x, m, k, n);
        using var ours = ModelSession.Load(quantized, "quantized.onnx", new SessionOptions { Threads = 1 });
        float[] mine = ours.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, m, k) })["Y"].ToArray<float>();

        for (int i = 0; i < m * n; i++)
            Assert.True(Math.Abs(ort[i] - mine[i]) <= 1e-5 * Math.Max(1, Math.Abs(ort[i])), $"{i}: ORT {ort[i]}, ours {mine[i]}");

        // And both are within int8 rounding of the float product (float64 reference).
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double exact = bias[j], bound = 0;
                double xMax = x.Skip(i * k).Take(k).Select(v => (double)Math.Abs(v)).Max();
                double wMax = Enumerable.Range(0, k).Max(t => Math.Abs(w[t * n + j]));
                for (int t = 0; t < k; t++)
                {
                    exact += (double)x[i * k + t] * w[t * n + j];
                    bound += Math.Abs(x[i * k + t]) * (wMax / 127) / 2 + Math.Abs(w[t * n + j]) * (4.0 / 255) / 2;
                }
                Assert.True(Math.Abs(mine[i * n + j] - exact) <= bound + 1e-3, $"({i},{j}) {mine[i * n + j]} vs {exact} (bound {bound})");
            }
        }
    }

    [Fact]
    public void The_source_model_is_not_changed()
    {
        var random = new Random(1);
        var source = new OnnxModel(MatMulAddModel(2, 64, 32, Enumerable.Range(0, 64 * 32).Select(_ => random.NextSingle()).ToArray(), new float[32]));
        byte[] before = source.ToByteArray();
        DynamicQuantizer.Quantize(source, new QuantizationOptions());
        Assert.Equal(before, source.ToByteArray());
    }

    [Fact]
    public void Small_weights_and_excluded_nodes_stay_float_with_a_reason()
    {
        var source = new OnnxModel(MatMulAddModel(2, 16, 8, new float[16 * 8], new float[8]));
        var result = DynamicQuantizer.Quantize(source, new QuantizationOptions());
        var decision = Assert.Single(result.Decisions);
        Assert.False(decision.Quantized);
        Assert.Contains("fewer than 1024", decision.Reason);
        Assert.DoesNotContain(result.Model.Graph.Node, node => node.OpType == "MatMulInteger");
    }

    private static float[] RunOrt(byte[] model, float[] x, int m, int k, int n)
    {
        using var options = new OrtSessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(model, options);
        using var input = OrtValue.CreateTensorValueFromMemory(x, [m, k]);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["X"], [input], ["Y"]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    internal static ModelProto MatMulAddModel(int m, int k, int n, float[] w, float[] bias)
    {
        var graph = new GraphProto { Name = "matmul_add" };
        graph.Input.Add(Value("X", m, k));
        graph.Output.Add(Value("Y", m, n));
        graph.Initializer.Add(Floats("W", [k, n], w));
        graph.Initializer.Add(Floats("B", [n], bias));
        graph.Node.Add(Node("MatMul", "mm", ["X", "W"], ["XW"]));
        graph.Node.Add(Node("Add", "add", ["XW", "B"], ["Y"]));
        var model = new ModelProto { IrVersion = 8, ProducerName = "test", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static ValueInfoProto Value(string name, params long[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (long d in dims) shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
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
