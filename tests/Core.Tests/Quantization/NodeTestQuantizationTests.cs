using Google.Protobuf;
using Quantize.Core.Quantization;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Tests;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Core.Tests.Quantization;

/// <summary>
/// The quantizer on every model of the ONNX node tests (and the extra suites), with each input after the first made a
/// constant from the test data so that there are weights to quantize: no mode ever fails on an op it cannot handle,
/// every output loads, and where our runtime runs the float model it runs the quantized one close to ONNX's expected output.
/// </summary>
public class NodeTestQuantizationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(QuantizationMode.Weights)]
    [InlineData(QuantizationMode.Dynamic)]
    [InlineData(QuantizationMode.Int4)]
    [InlineData(QuantizationMode.Static)]
    public void Every_node_test_model_quantizes_without_error_and_stays_close_to_the_expected_output(QuantizationMode mode)
    {
        var problems = new List<string>();
        int quantized = 0, checkedOutputs = 0, notCalibrated = 0;
        foreach (string name in NodeTestCases.All())
        {
            string folder = NodeTestCases.Folder(name);
            if (WithConstantInputs(folder) is not { } source) continue;
            var x = ReadFloats(source, Path.Combine(folder, "test_data_set_0", "input_0.pb"));
            SampleSource? calibration = null;
            if (mode == QuantizationMode.Static)
            {
                if (x is null) continue;
                var feeds = new Dictionary<string, Tensor> { [FirstInput(source)] = x };
                calibration = () => [feeds];
            }
            QuantizationResult result;
            try
            {
                result = Quantizer.Quantize(source, new QuantizationOptions { Mode = mode, MinimumSize = 0, Threads = 1 }, calibration);
            }
            catch (Exception e) when (mode == QuantizationMode.Static && e is UnsupportedModelException or NotSupportedException)
            {
                // Calibration runs the model; one our runtime cannot run cannot be calibrated. The message must say which op.
                if (!e.Message.Contains("not", StringComparison.Ordinal)) problems.Add($"{name}: unclear message: {e.Message}");
                notCalibrated++;
                continue;
            }
            catch (Exception e)
            {
                problems.Add($"{name}: {e.GetType().Name}: {e.Message}");
                continue;
            }
            if (result.QuantizedCount == 0) continue;
            quantized++;
            byte[] bytes = result.Model.ToByteArray();
            OnnxModel.Load(bytes, name + ".onnx"); // validates the graph
            ModelSession floatSession;
            try
            {
                floatSession = ModelSession.Create(source);
            }
            catch (Exception e) when (e is UnsupportedModelException or NotSupportedException)
            {
                continue;
            }
            using (floatSession)
            {
                using var session = ModelSession.Load(bytes, name + ".onnx");
                if (x is null || session.Outputs[0].ElementType != TensorElementType.Float32) continue;
                float[] actual = session.Run(new Dictionary<string, Tensor> { [FirstInput(source)] = x })[session.Outputs[0].Name].ToArray<float>();
                float[] expected = ReadFloats(source, Path.Combine(folder, "test_data_set_0", "output_0.pb"))!.ToArray<float>();
                double cosine = expected.Any(v => v != 0) || actual.Any(v => v != 0) ? TestGraphs.Cosine(expected, actual) : 1;
                checkedOutputs++;
                if (!(cosine >= 0.99)) problems.Add($"{name}: cosine to the expected output {cosine:F5} ({result.QuantizedCount} nodes quantized)");
            }
        }
        output.WriteLine($"{mode}: {quantized} models quantized, {checkedOutputs} outputs compared, {notCalibrated} not calibratable (ops our runtime lacks)");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        // int4 applies to MatMul weights with K of at least a block; one node test has such a MatMul.
        int minimum = mode == QuantizationMode.Int4 ? 1 : 20;
        Assert.True(quantized >= minimum, $"only {quantized} models had something to quantize");
        Assert.True(checkedOutputs >= minimum, $"only {checkedOutputs} outputs compared");
    }

    /// <summary>The case's model with every tensor input after the first replaced by a constant from test_data_set_0, or null if that cannot be done.</summary>
    private static OnnxModel? WithConstantInputs(string folder)
    {
        OnnxModel original;
        try
        {
            original = OnnxModel.Load(Path.Combine(folder, "model.onnx"));
        }
        catch (InvalidModelException)
        {
            return null;
        }
        var proto = original.Proto.Clone();
        var inputs = proto.Graph.Input.Where(i => proto.Graph.Initializer.All(t => t.Name != i.Name)).ToList();
        if (inputs.Count < 2 || inputs.Any(i => i.Type?.TensorType is null)) return null;
        for (int i = 1; i < inputs.Count; i++)
        {
            string file = Path.Combine(folder, "test_data_set_0", $"input_{i}.pb");
            if (!File.Exists(file)) return null;
            var tensor = TensorProto.Parser.ParseFrom(File.ReadAllBytes(file));
            tensor.Name = inputs[i].Name;
            proto.Graph.Initializer.Add(tensor);
            proto.Graph.Input.Remove(inputs[i]);
        }
        try
        {
            return OnnxModel.Load(proto.ToByteArray(), Path.Combine(folder, "model.onnx"));
        }
        catch (InvalidModelException)
        {
            return null;
        }
    }

    private static string FirstInput(OnnxModel model) => model.Graph.Input.First(i => model.Graph.Initializer.All(t => t.Name != i.Name)).Name;

    /// <summary>A float32 test-data tensor, or null for other types.</summary>
    private static Tensor? ReadFloats(OnnxModel model, string file)
    {
        var data = model.ReadTensor(TensorProto.Parser.ParseFrom(File.ReadAllBytes(file)));
        return data.ElementType == TensorElementType.Float32 ? Tensor.Create(data.ToArray<float>(), data.Shape.ToArray().Select(d => (int)d).ToArray()) : null;
    }
}
