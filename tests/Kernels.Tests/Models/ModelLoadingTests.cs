using Google.Protobuf;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Models.TensorFlow;
using Quantize.Kernels.Tests.Support;
using Quantize.Tests;
using OnnxType = Quantize.Kernels.Models.Onnx.TensorProto.Types.DataType;
using OnnxShape = Quantize.Kernels.Models.Onnx.TensorShapeProto;

namespace Quantize.Kernels.Tests.Models;

/// <summary>The format comes from the content, not the name; files that are not usable models fail with an error naming them.</summary>
public class ModelLoadingTests
{
    private const string OnnxCase = "onnx-node-tests-extra/pytorch-converted/test_Conv3d_groups/model.onnx";
    private const string GraphCase = "tf-graphs/nnstreamer_mnist.pb";

    public static TheoryData<string> OnnxModels() => new("onnx-node-tests/test_if/model.onnx", "onnx-node-tests/test_loop11/model.onnx", OnnxCase);

    public static TheoryData<string> TensorFlowGraphs() => new(GraphCase, "tf-graphs/kws_ds_cnn_s.pb", "tf-graphs/utensor_test_cnn_quant.pb");

    [Theory]
    [MemberData(nameof(OnnxModels))]
    public void Onnx_bytes_named_pb_load_as_onnx(string relative)
    {
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(SharedData.Require(relative));
        File.WriteAllBytes(temp["model.pb"], bytes);

        Assert.IsType<OnnxModel>(Model.Load(temp["model.pb"]));
        Assert.IsType<OnnxModel>(Model.Load(bytes, "model.pb"));
        using var stream = new MemoryStream(bytes);
        Assert.IsType<OnnxModel>(Model.Load(stream, "model.pb"));
    }

    [Theory]
    [MemberData(nameof(TensorFlowGraphs))]
    public void A_graphdef_named_onnx_loads_as_graphdef(string relative)
    {
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(SharedData.Require(relative));
        File.WriteAllBytes(temp["model.onnx"], bytes);

        var model = Assert.IsType<GraphDefModel>(Model.Load(temp["model.onnx"]));
        Assert.Equal(GraphDef.Parser.ParseFrom(bytes), model.Proto);
        Assert.IsType<GraphDefModel>(Model.Load(bytes, "model.onnx"));
    }

    [Fact]
    public void Asking_for_the_wrong_format_is_an_error_naming_the_file()
    {
        string graph = SharedData.Require(GraphCase);
        string onnx = SharedData.Require(OnnxCase);

        var error = Assert.Throws<InvalidModelException>(() => OnnxModel.Load(graph));
        Assert.Equal(graph, error.Source);
        Assert.Contains("no graph", error.Message);
        Assert.Equal(onnx, Assert.Throws<InvalidModelException>(() => GraphDefModel.Load(onnx)).Source);
    }

    [Fact]
    public void An_empty_file_is_an_error()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp["model.onnx"], []);

        AssertRefused(temp["model.onnx"], "empty");
        Assert.Contains("empty", Assert.Throws<InvalidModelException>(() => Model.Load(ReadOnlyMemory<byte>.Empty, "resource.onnx")).Message);
    }

    [Fact]
    public void Random_bytes_are_an_error()
    {
        using var temp = new TempFolder();
        var bytes = new byte[4096];
        new Random(42).NextBytes(bytes);
        File.WriteAllBytes(temp["model.onnx"], bytes);

        AssertRefused(temp["model.onnx"], "neither an ONNX model nor a TensorFlow GraphDef");
    }

    [Fact]
    public void A_folder_is_an_error()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp["model.onnx"]);

        AssertRefused(temp["model.onnx"], "is a folder");
    }

    [Fact]
    public void A_missing_path_is_an_error()
    {
        using var temp = new TempFolder();

        AssertRefused(temp["missing.onnx"], "not found");
        AssertRefused(temp["missing-folder/model.onnx"], "not found");
    }

    [Theory]
    [InlineData(GraphCase)]
    [InlineData("tf-graphs/kws_ds_cnn_s.pb")]
    [InlineData(OnnxCase)]
    [InlineData("onnx-node-tests/test_loop11/model.onnx")]
    public void A_truncated_model_is_an_error(string relative)
    {
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(SharedData.Require(relative));
        string path = temp[Path.GetFileName(relative)];
        foreach (int length in new[] { bytes.Length - 1, bytes.Length / 2, 3 })
        {
            File.WriteAllBytes(path, bytes[..length]);
            var error = Assert.Throws<InvalidModelException>(() => Model.Load(path));
            Assert.Equal(path, error.Source);
            Assert.StartsWith(path + ": ", error.Message);
        }
    }

    [Fact]
    public void An_onnx_node_input_that_nothing_produces_is_an_error()
    {
        using var temp = new TempFolder();
        var proto = OnnxModel.Load(SharedData.Require(OnnxCase)).Proto.Clone();
        proto.Graph.Node[0].Input[0] = "nowhere";
        File.WriteAllBytes(temp["model.onnx"], proto.ToByteArray());

        var error = AssertRefused(temp["model.onnx"], "reads 'nowhere', which no node, graph input or initializer produces");
        Assert.Contains("(Conv)", error.Message);
    }

    [Fact]
    public void A_graphdef_node_input_that_nothing_produces_is_an_error()
    {
        using var temp = new TempFolder();
        var proto = GraphDefModel.Load(SharedData.Require(GraphCase)).Proto.Clone();
        var node = proto.Node.First(n => n.Op == "MatMul");
        node.Input[0] = "nowhere:1";
        File.WriteAllBytes(temp["model.pb"], proto.ToByteArray());

        var error = AssertRefused(temp["model.pb"], "reads 'nowhere:1', but the graph has no node 'nowhere'");
        Assert.Contains($"'{node.Name}' (MatMul)", error.Message);
    }

    [Fact]
    public void A_subgraph_may_read_a_value_of_its_outer_graph()
    {
        var model = IfModel(thenReads: "x");

        var loaded = OnnxModel.Load(model.ToByteArray(), "outer-scope.onnx");

        // ONNX Runtime agrees the model is valid, and runs it.
        var x = new TensorData(TensorElementType.Float32, [2], BitConverter.GetBytes(1.5f).Concat(BitConverter.GetBytes(-2f)).ToArray());
        var condition = new TensorData(TensorElementType.Bool, [], [1]);
        using var session = OrtOracle.Session(loaded.ToByteArray());
        var output = OrtOracle.Run(session, [("x", x), ("cond", condition)], ["y"]);
        Assert.True(TensorComparison.BitwiseEqual(x, output[0]));
    }

    [Fact]
    public void A_subgraph_reading_a_value_that_exists_nowhere_is_an_error_naming_the_subgraph()
    {
        var error = Assert.Throws<InvalidModelException>(() => OnnxModel.Load(IfModel(thenReads: "nowhere").ToByteArray(), "bad-branch.onnx"));

        Assert.Equal("bad-branch.onnx", error.Source);
        Assert.Contains("'then_branch' subgraph of node 'if'", error.Message);
        Assert.Contains("'nowhere'", error.Message);
    }

    [Fact]
    public void An_outer_graph_cannot_read_a_value_made_inside_a_subgraph()
    {
        var model = IfModel(thenReads: "x");
        model.Graph.Node.Add(new NodeProto { OpType = "Identity", Name = "leak", Input = { "then_out" }, Output = { "z" } });

        var error = Assert.Throws<InvalidModelException>(() => OnnxModel.Load(model.ToByteArray(), "leak.onnx"));

        Assert.Contains("node 'leak' (Identity) in the main graph reads 'then_out'", error.Message);
    }

    /// <summary>y = If(cond) then Identity(<paramref name="thenReads"/>) else Identity(x), both branches reading the outer graph.</summary>
    private static ModelProto IfModel(string thenReads)
    {
        static ValueInfoProto Value(string name, OnnxType type, params long[] shape)
        {
            var tensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = new OnnxShape() };
            foreach (long d in shape) tensorType.Shape.Dim.Add(new OnnxShape.Types.Dimension { DimValue = d });
            return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensorType } };
        }

        static GraphProto Branch(string name, string reads) => new()
        {
            Name = name,
            Node = { new NodeProto { OpType = "Identity", Input = { reads }, Output = { name + "_out" } } },
            Output = { Value(name + "_out", OnnxType.Float, 2) },
        };

        return new ModelProto
        {
            IrVersion = 8,
            OpsetImport = { new OperatorSetIdProto { Domain = "", Version = 17 } },
            Graph = new GraphProto
            {
                Name = "outer",
                Input = { Value("x", OnnxType.Float, 2), Value("cond", OnnxType.Bool) },
                Output = { Value("y", OnnxType.Float, 2) },
                Node =
                {
                    new NodeProto
                    {
                        OpType = "If",
                        Name = "if",
                        Input = { "cond" },
                        Output = { "y" },
                        Attribute =
                        {
                            new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("then", thenReads) },
                            new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("else", "x") },
                        },
                    },
                },
            },
        };
    }

    private static InvalidModelException AssertRefused(string path, string problem)
    {
        var error = Assert.Throws<InvalidModelException>(() => Model.Load(path));
        Assert.Equal(path, error.Source);
        Assert.StartsWith(path + ": ", error.Message);
        Assert.Contains(problem, error.Message);
        return error;
    }
}
