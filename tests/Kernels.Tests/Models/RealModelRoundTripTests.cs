using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Tests.Support;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Models;

/// <summary>
/// Real models saved back by us, inline and with external data, run in ONNX Runtime to outputs
/// bit for bit equal to the originals' on real inputs: nothing in the graph or the weights moved.
/// </summary>
public class RealModelRoundTripTests
{
    [Fact]
    public void ResNet18_saved_inline_and_with_external_data_gives_bitwise_identical_outputs()
    {
        string path = RealModels.ResNet18Path;
        var model = Assert.IsType<OnnxModel>(Model.Load(path));
        var images = Directory.GetDirectories(SharedData.Require("calibration/resnet18")).Order(StringComparer.Ordinal).Take(2).ToList();
        var inputs = images.Select(folder => (IReadOnlyList<(string, TensorData)>)[Input(model, folder, "Input247")]).ToList();

        RoundTrip(model, File.ReadAllBytes(path), inputs);
    }

    [Fact]
    public void MiniLM_loaded_from_its_embedded_resource_and_saved_back_gives_bitwise_identical_outputs()
    {
        byte[] bytes = RealModels.ReadManifestResource(RealModels.MiniLMAssemblyPath, RealModels.MiniLMResource);
        var model = Assert.IsType<OnnxModel>(Model.Load(bytes, RealModels.MiniLMResource));
        Assert.Equal(RealModels.MiniLMResource, model.Source);
        string[] names = ["input_ids", "attention_mask", "token_type_ids"];
        var inputs = new[] { "calibration/minilm/s000", "calibration/minilm-batch8" }
            .Select(relative => (IReadOnlyList<(string, TensorData)>)names.Select(n => Input(model, SharedData.Require(relative), n)).ToList())
            .ToList();

        RoundTrip(model, bytes, inputs);
    }

    /// <summary>Saves the model inline and with external data, and compares ORT's outputs on each input set with the original's.</summary>
    private static void RoundTrip(OnnxModel model, byte[] originalBytes, IReadOnlyList<IReadOnlyList<(string, TensorData)>> inputSets)
    {
        using var temp = new TempFolder();
        string inline = temp["inline/model.onnx"];
        string external = temp["external/model.onnx"];
        model.Save(inline, new OnnxSaveOptions { ExternalData = ExternalDataMode.Never });
        model.Save(external, new OnnxSaveOptions { ExternalData = ExternalDataMode.Always });

        var output = TestContext.Current.TestOutputHelper;
        bool identical = originalBytes.AsSpan().SequenceEqual(File.ReadAllBytes(inline));
        output?.WriteLine($"{model.Source}: {originalBytes.Length:N0} bytes; saved inline: identical bytes {identical}; "
            + $"with external data: model {new FileInfo(external).Length:N0} + data {new FileInfo(external + ".data").Length:N0} bytes");
        // The inline save is the same message (and, as our writer follows ONNX's field order, the same bytes).
        Assert.Equal(model.Proto, OnnxModel.Load(inline).Proto);
        Assert.True(identical, "the inline save's bytes differ from the original's");
        var externalModel = OnnxModel.Load(external);
        Assert.Contains(externalModel.DescribeStoredTensors(), t => t.IsExternal);

        var outputNames = model.Graph.Output.Select(o => o.Name).ToList();
        var expected = RunAll(OrtOracle.Session(originalBytes), inputSets, outputNames);
        foreach (string saved in new[] { inline, external })
        {
            var actual = RunAll(OrtOracle.Session(saved), inputSets, outputNames);
            for (int set = 0; set < inputSets.Count; set++)
            {
                for (int o = 0; o < outputNames.Count; o++)
                {
                    Assert.True(TensorComparison.BitwiseEqual(expected[set][o], actual[set][o]),
                        $"{saved}: output '{outputNames[o]}' on input set {set} differs from the original's");
                }
            }
        }
    }

    private static List<TensorData[]> RunAll(InferenceSession session, IReadOnlyList<IReadOnlyList<(string, TensorData)>> inputSets, List<string> outputNames)
    {
        using (session)
            return inputSets.Select(inputs => OrtOracle.Run(session, inputs, outputNames)).ToList();
    }

    /// <summary>A calibration tensor (a serialized TensorProto named after the model input), decoded by our reader.</summary>
    private static (string, TensorData) Input(OnnxModel model, string folder, string name) =>
        (name, model.ReadTensor(TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(folder, name + ".pb")))));
}
