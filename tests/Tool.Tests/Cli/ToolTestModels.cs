using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Core.Running;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool.Tests.Cli;

/// <summary>
/// A temporary folder with a small classifier (X [N, 64] -> MatMul -> Relu -> MatMul -> scores [N, 10], N symbolic),
/// input samples, and ONNX Runtime as the oracle for what the models output.
/// </summary>
internal sealed class ToolTestModels : IDisposable
{
    public const string Output = "scores:0/out";

    public string Folder { get; } = Directory.CreateTempSubdirectory("quantize-tool-").FullName;

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    public string Path(params string[] parts) => System.IO.Path.Combine([Folder, .. parts]);

    /// <summary>Writes the float classifier and returns its path.</summary>
    public string WriteClassifier(string name = "classifier.onnx")
    {
        var random = new Random(4);
        var graph = new GraphProto { Name = "classifier" };
        graph.Input.Add(Value("X", "N", 64));
        graph.Output.Add(Value(Output, "N", 10));
        graph.Initializer.Add(Floats("W1", [64, 64], random));
        graph.Initializer.Add(Floats("W2", [64, 10], random));
        graph.Node.Add(Node("MatMul", "first", ["X", "W1"], ["H"]));
        graph.Node.Add(Node("Relu", "relu", ["H"], ["R"]));
        graph.Node.Add(Node("MatMul", "second", ["R", "W2"], [Output]));
        var model = new ModelProto { IrVersion = 8, Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        string path = Path(name);
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }

    /// <summary>Writes <paramref name="count"/> sample folders, each X.pb of shape [rows, 64]; returns the folder.</summary>
    public string WriteSamples(int count, int rows = 4)
    {
        var random = new Random(8);
        string root = Path("data");
        for (int i = 0; i < count; i++)
        {
            string sample = Directory.CreateDirectory(System.IO.Path.Combine(root, $"s{i:D3}")).FullName;
            File.WriteAllBytes(System.IO.Path.Combine(sample, "X.pb"), Floats("X", [rows, 64], random).ToByteArray());
        }
        return root;
    }

    /// <summary>The samples as runtime tensors, in folder order.</summary>
    public static List<Tensor> ReadSamples(string root) =>
        Directory.GetDirectories(root).Order(StringComparer.Ordinal).Select(d => TensorFiles.Read(System.IO.Path.Combine(d, "X.pb"))).ToList();

    /// <summary>The model's output for one input, by ONNX Runtime.</summary>
    public static (float[] Values, long[] Shape) RunOrt(string modelPath, Tensor x, string output = Output)
    {
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { IntraOpNumThreads = 1, LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL };
        using var session = new InferenceSession(modelPath, options);
        using var input = OrtValue.CreateTensorValueFromMemory(x.ToArray<float>(), x.Shape.ToArray().Select(d => (long)d).ToArray());
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["X"], [input], [output]);
        return (outputs[0].GetTensorDataAsSpan<float>().ToArray(), outputs[0].GetTensorTypeAndShape().Shape);
    }

    private static TensorProto Floats(string name, long[] dims, Random random)
    {
        var values = Enumerable.Range(0, (int)(dims[0] * dims[1])).Select(_ => random.NextSingle() * 2 - 1).ToArray();
        var bytes = new byte[values.Length * 4];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        var t = new TensorProto { Name = name, DataType = 1, RawData = ByteString.CopyFrom(bytes) };
        t.Dims.AddRange(dims);
        return t;
    }

    private static ValueInfoProto Value(string name, string batch, long size)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = batch });
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = size });
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = 1, Shape = shape } } };
    }

    private static NodeProto Node(string op, string name, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }
}
