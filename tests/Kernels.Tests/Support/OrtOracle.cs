using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using OrtElementType = Microsoft.ML.OnnxRuntime.Tensors.TensorElementType;

namespace Quantize.Kernels.Tests.Support;

/// <summary>
/// ONNX Runtime as the independent oracle: sessions on one thread (deterministic and lean on a
/// shared machine), inputs built from our decoded <see cref="TensorData"/>, outputs read back as
/// <see cref="TensorData"/> so they compare with our decoding of the expected files.
/// </summary>
internal static class OrtOracle
{
    public static SessionOptions Options() => new()
    {
        IntraOpNumThreads = 1,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
    };

    public static InferenceSession Session(byte[] model)
    {
        using var options = Options();
        return new InferenceSession(model, options);
    }

    public static InferenceSession Session(string modelPath)
    {
        using var options = Options();
        return new InferenceSession(modelPath, options);
    }

    /// <summary>Runs <paramref name="session"/> on named inputs and returns the named outputs, in order.</summary>
    public static TensorData[] Run(InferenceSession session, IReadOnlyList<(string Name, TensorData Value)> inputs, IReadOnlyList<string> outputNames)
    {
        var values = new List<OrtValue>();
        try
        {
            foreach (var (_, value) in inputs) values.Add(ToOrtValue(value));
            using var runOptions = new RunOptions();
            using var outputs = session.Run(runOptions, inputs.Select(i => i.Name).ToArray(), values, outputNames.ToArray());
            return outputs.Select(ToTensorData).ToArray();
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    /// <summary>An ORT tensor holding a copy of <paramref name="data"/>, built generically from its bytes (or strings).</summary>
    public static OrtValue ToOrtValue(TensorData data)
    {
        long[] shape = data.Shape.ToArray();
        if (data.ElementType == TensorElementType.String)
        {
            var strings = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
            for (int i = 0; i < data.Strings.Count; i++)
                strings.StringTensorSetElementAt(data.Strings[i], i);
            return strings;
        }

        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToOrt(data.ElementType), shape);
        try
        {
            var destination = value.GetTensorMutableRawData();
            if (destination.Length != data.Bytes.Length)
                throw new InvalidOperationException($"ORT allocated {destination.Length} bytes for a {data.ElementType.DisplayName()} {TensorData.FormatShape(shape)} tensor; we hold {data.Bytes.Length}.");
            data.Bytes.CopyTo(destination);
            return value;
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    /// <summary>ORT's tensor as <see cref="TensorData"/>: the element type mapped back, the raw bytes (or strings) copied.</summary>
    public static TensorData ToTensorData(OrtValue value)
    {
        if (!value.IsTensor)
            throw new InvalidOperationException($"ORT returned a {value.OnnxType}, not a tensor.");
        var info = value.GetTensorTypeAndShape();
        var type = OnnxElementTypes.ToElementType((int)info.ElementDataType);
        if (type == TensorElementType.Undefined)
            throw new InvalidOperationException($"ORT returned element type {info.ElementDataType}, which we do not map.");
        long[] shape = info.Shape;
        if (type == TensorElementType.String)
        {
            long count = TensorData.CountElements(shape);
            var strings = new byte[count][];
            for (int i = 0; i < count; i++) strings[i] = value.GetStringElementAsSpan(i).ToArray();
            return TensorData.FromStrings(shape, strings);
        }
        return new TensorData(type, shape, value.GetTensorMutableRawData().ToArray());
    }

    public static OrtElementType ToOrt(TensorElementType type) => (OrtElementType)OnnxElementTypes.ToOnnx(type);
}
